"""Permissions over REST on both back ends: the role × operation × scope matrix over records, lists
and exports; IDOR on every record endpoint; mass assignment; hidden and read-only fields; tokens;
sign-in throttling; audit of permission changes; and the query count of a permission-filtered list.
"""
from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from runtime import system_tables as st_
from runtime import users
from tests.conftest import Api
from tests.web.people_setup import APP, fast_hashing, setup_people  # noqa: F401 - a fixture

TICKETS = "/apps/perm/ticket"


@pytest.fixture
def people(fast_hashing, flask_app, api, make_app):  # noqa: F811
    return setup_people(flask_app, api, make_app)


def export_ids(client: Api, query: str = "") -> tuple[int, list[str], set[int]]:
    resp = client.client.get(f"/api/v1{TICKETS}?format=csv{query}", headers=client._headers())
    if resp.status_code != 200:
        return resp.status_code, [], set()
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    return 200, rows[0], {int(r[0]) for r in rows[1:] if r}


# ---------------------------------------------------------------- the matrix
# Each acting user, the scope their role has on every operation, and who owns their own record,
# a teammate's record and a stranger's record.
MATRIX = [
    ("ann", "own", {"mine": "ann", "teammate": "eve", "stranger": "sam"}),       # agent
    ("ben", "team", {"mine": "ben", "teammate": "eve", "stranger": "sam"}),      # supervisor
    ("mia", "all", {"mine": "mia", "teammate": "wes", "stranger": "sam"}),       # manager
]
SEES = {"own": {"mine"}, "team": {"mine", "teammate"}, "all": {"mine", "teammate", "stranger"}}


@pytest.mark.parametrize("user, scope, owners", MATRIX, ids=["agent-own", "supervisor-team", "manager-all"])
def test_permission_matrix(people, user, scope, owners):
    me = people[user]
    recs = {kind: people.ticket(owner, subject=f"{kind} of {user}") for kind, owner in owners.items()}
    doomed = {kind: people.ticket(owner, subject=f"{kind} to delete") for kind, owner in owners.items()}
    seen = SEES[scope]
    for kind, rec in recs.items():
        cell = f"{user}/{scope}/{kind}"
        readable = kind in seen
        # read: the record, and the list
        st, body = me.get(f"{TICKETS}/{rec['id']}")
        assert st == (200 if readable else 404), cell
        if not readable:
            assert body["error"]["code"] == "not_found", cell
        # update
        st, body = me.patch(f"{TICKETS}/{rec['id']}", {"subject": f"changed by {user}"})
        assert st == (200 if readable else 404), (cell, body)
        # delete
        st, _ = me.delete(f"{TICKETS}/{doomed[kind]['id']}")
        assert st == (204 if readable else 404), cell
        assert people.api.get(f"{TICKETS}/{doomed[kind]['id']}")[0] == (404 if readable else 200), cell
    st, page = me.get(f"{TICKETS}?page_size=500")
    assert st == 200
    expected = {recs[k]["id"] for k in seen}
    listed = {r["id"] for r in page["items"]}
    assert listed & {r["id"] for r in recs.values()} == expected
    assert page["total"] == len(listed)
    # export: the same rows as the list, streamed
    st, _, exported = export_ids(me)
    assert st == 200 and exported == listed
    # create: every one of these roles may create; the record is theirs
    st, created = me.post(TICKETS, {"subject": f"new by {user}"})
    assert st == 201 and created["owner"] == people.id(user)
    assert me.get(f"{TICKETS}/{created['id']}")[0] == 200


def test_readable_but_not_writable_answers_403(people):
    rec = people.ticket("sam")
    vic = people["vic"]                     # viewer: read all, export all, nothing else
    assert vic.get(f"{TICKETS}/{rec['id']}")[0] == 200
    for st, body in (vic.patch(f"{TICKETS}/{rec['id']}", {"subject": "x"}), vic.delete(f"{TICKETS}/{rec['id']}"),
                     vic.post(TICKETS, {"subject": "x"})):
        assert st == 403 and body["error"]["code"] == "forbidden"
    assert export_ids(vic)[2] >= {rec["id"]}
    # agents have no entry for customers at all: no list, no export, no create
    assert people["sam"].get("/apps/perm/customer")[0] == 403
    assert people["sam"].post("/apps/perm/customer", {"name": "x"})[0] == 403
    resp = people["sam"].client.get("/api/v1/apps/perm/customer?format=csv", headers=people["sam"]._headers())
    assert resp.status_code == 403


# ---------------------------------------------------------------- IDOR
def test_another_owners_record_is_not_found_on_every_record_endpoint(people):
    theirs = people.ticket("sam", code="S-1")
    mine = people.ticket("ann", code="A-1")
    ann = people["ann"]
    st, share = people["sam"].post(f"{TICKETS}/{theirs['id']}/shares", {"user": people.id("wes"), "access": "read"})
    assert st == 201
    calls = {
        "get": lambda rid: ann.get(f"{TICKETS}/{rid}"),
        "patch": lambda rid: ann.patch(f"{TICKETS}/{rid}", {"subject": "x"}),
        "patch if-match": lambda rid: ann.patch(f"{TICKETS}/{rid}", {"subject": "x"}, headers={"If-Match": "1"}),
        "timeline": lambda rid: ann.get(f"{TICKETS}/{rid}/timeline"),
        "shares": lambda rid: ann.get(f"{TICKETS}/{rid}/shares"),
        "share": lambda rid: ann.post(f"{TICKETS}/{rid}/shares", {"user": people.id("ann"), "access": "edit"}),
        "unshare": lambda rid: ann.delete(f"{TICKETS}/{rid}/shares/{share['id']}"),
        "transition": lambda rid: ann.post(f"{TICKETS}/{rid}/transitions/close", {}),
        "delete": lambda rid: ann.delete(f"{TICKETS}/{rid}"),
    }
    for name, call in calls.items():
        st, body = call(theirs["id"])
        assert st == 404 and body["error"]["code"] == "not_found", (name, st, body)
    # the same calls on a record of hers do not answer 404 (the endpoint exists and she may use it)
    for name, call in calls.items():
        if name in ("unshare", "delete"):
            continue
        st, _ = call(mine["id"])
        assert st != 404, name
    # ids that do not exist and ids that are not ids look the same
    for rid in (999_999, "abc", "-1", "1.5"):
        assert ann.get(f"{TICKETS}/{rid}")[0] == 404
    # a filter on another's record finds nothing; a unique value of another's record is not revealed
    st, page = ann.get(f"{TICKETS}?filter=id == {theirs['id']}")
    assert st == 200 and page["total"] == 0
    assert people.api.get(f"{TICKETS}/{theirs['id']}")[1]["subject"] == "ticket of sam"


# ---------------------------------------------------------------- mass assignment
@pytest.mark.parametrize("field, value", [
    ("owner", 1), ("created_by", 1), ("updated_by", 1), ("_version", 9), ("id", 77),
    ("created_at", "2020-01-01T00:00:00+00:00"), ("updated_at", "2020-01-01T00:00:00+00:00"),
    ("_flow", {"state": "closed"}), ("_tags", ["vip"]),
])
def test_system_fields_in_a_body_are_refused_by_name(people, field, value):
    ann = people["ann"]
    st, body = ann.post(TICKETS, {"subject": "x", field: value})
    assert st == 422 and field in body["error"]["details"], body
    mine = people.ticket("ann")
    st, body = ann.patch(f"{TICKETS}/{mine['id']}", {"subject": "y", field: value})
    assert st == 422 and field in body["error"]["details"], body
    st, again = people.api.get(f"{TICKETS}/{mine['id']}")
    assert again["subject"] == "ticket of ann" and again["_version"] == 1 and again["owner"] == people.id("ann")
    st, page = people.api.get(f"{TICKETS}?filter=subject == 'x'")
    assert page["total"] == 0


def test_owner_is_writable_only_by_admins_and_update_all(people):
    rec = people.ticket("ann")
    # an agent (update: own) cannot hand a record over, not even their own
    st, body = people["ann"].patch(f"{TICKETS}/{rec['id']}", {"owner": people.id("sam")})
    assert st == 422 and "owner" in body["error"]["details"]
    # a manager (update: all) can, on create and on update
    st, made = people["mia"].post(TICKETS, {"subject": "for wes", "owner": people.id("wes")})
    assert st == 201 and made["owner"] == people.id("wes")
    st, moved = people["mia"].patch(f"{TICKETS}/{rec['id']}", {"owner": people.id("sam")})
    assert st == 200 and moved["owner"] == people.id("sam")
    assert people["ann"].get(f"{TICKETS}/{rec['id']}")[0] == 404
    st, back = people.api.patch(f"{TICKETS}/{rec['id']}", {"owner": people.id("ann")})
    assert st == 200 and back["owner"] == people.id("ann")
    assert people["mia"].patch(f"{TICKETS}/{rec['id']}", {"owner": "sam"})[0] == 422


# ---------------------------------------------------------------- hidden and read-only fields
def test_a_hidden_field_is_in_no_answer_and_cannot_be_used(people):
    cust = people.api.post("/apps/perm/customer", {"name": "华东", "revenue": "98765.43"})[1]
    rec = people.ticket("cle", cost="4242.42", severity="high", customer=cust["id"])
    people.api.patch(f"{TICKETS}/{rec['id']}", {"cost": "5151.51"})
    cle = people["cle"]
    secrets = ("4242.42", "5151.51", "4242.4", "5151.5")

    def raw(path):
        resp = cle.client.get("/api/v1" + path, headers=cle._headers())
        return resp.status_code, resp.get_data(as_text=True)

    for path in (f"{TICKETS}/{rec['id']}", TICKETS, f"{TICKETS}/{rec['id']}/timeline",
                 f"{TICKETS}?format=csv", f"{TICKETS}?format=csv&fields=subject,severity",
                 f"{TICKETS}?q=4242", "/apps/perm/customer", f"/apps/perm/customer/{cust['id']}"):
        st, text = raw(path)
        assert st == 200, (path, text)
        assert not any(s in text for s in secrets), path
        assert "98765" not in text, path
    st, got = cle.get(f"{TICKETS}/{rec['id']}")
    assert "cost" not in got and got["severity"] == "high"
    st, page = cle.get(TICKETS)
    assert all("cost" not in r for r in page["items"])
    st, header, _ = export_ids(cle)
    assert "成本" not in header and "cost" not in header
    st, tl = cle.get(f"{TICKETS}/{rec['id']}/timeline")
    assert [i["summary"] for i in tl["items"]][0] == "changed band"          # not "changed band, cost"
    for item in tl["items"]:
        details = item["details"] or {}
        assert "cost" not in (details.get("before") or {}) and "cost" not in (details.get("after") or {})
    # filter, sort and fields naming it: 403
    for query in ("filter=cost > 1", "filter=cost == 4242.42 or id > 0", "sort=-cost", "fields=subject,cost",
                  "format=csv&filter=cost > 0", "format=csv&fields=cost"):
        st, body = cle.get(f"{TICKETS}?{query}")
        assert st == 403 and body["error"]["code"] == "forbidden", query
    # through a lookup into a field hidden there: 403 too
    st, body = cle.get(f"{TICKETS}?filter=customer.revenue > 1")
    assert st == 403, body
    assert cle.get(f"{TICKETS}?filter=customer.name == '华东'")[1]["total"] == 1


def test_writing_a_hidden_or_read_only_field_answers_403_naming_it(people):
    rec = people.ticket("cle", cost="10", severity="high")
    cle = people["cle"]
    for body, field in (({"cost": "1"}, "cost"), ({"severity": "low"}, "severity"),
                        ({"subject": "ok", "cost": "1"}, "cost")):
        st, out = cle.patch(f"{TICKETS}/{rec['id']}", body)
        assert st == 403 and field in out["error"]["details"] and field in out["error"]["message"], out
        st, out = cle.post(TICKETS, {"subject": "new", **body})
        assert st == 403 and field in out["error"]["details"], out
    st, again = people.api.get(f"{TICKETS}/{rec['id']}")
    assert again["cost"] == "10.00" and again["severity"] == "high" and again["subject"] == "ticket of cle"
    st, ok = cle.patch(f"{TICKETS}/{rec['id']}", {"subject": "fine"})
    assert st == 200 and ok["subject"] == "fine" and "cost" not in ok


# ---------------------------------------------------------------- tokens
def _session(flask_app, name: str, password: str, addr: str = "127.0.0.1"):
    client = flask_app.test_client()
    html = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    resp = client.post("/login", data={"username": name, "password": password, "csrf_token": csrf},
                       environ_base={"REMOTE_ADDR": addr})
    return client, csrf, resp


def test_tokens_revoked_expired_read_only_and_per_app(people, flask_app):
    client, csrf, resp = _session(flask_app, "ann", people.users["ann"]["password"])
    assert resp.status_code == 302
    api_headers = {"X-CSRF-Token": csrf, "Accept": "application/json"}
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    resp = client.post("/api/v1/tokens", json={"name": "old", "expires_at": past}, headers=api_headers)
    assert resp.status_code == 422 and "expires_at" in resp.get_json()["error"]["details"]
    assert client.post("/api/v1/tokens", json={"name": "no csrf"}).status_code == 403
    resp = client.post("/api/v1/tokens", json={"name": "erp", "scope": "read", "apps": ["perm"]}, headers=api_headers)
    assert resp.status_code == 201, resp.get_json()
    made = resp.get_json()
    assert set(made) == {"id", "name", "scope", "apps", "expires_at", "token"}
    listed = client.get("/api/v1/tokens").get_json()["items"]
    assert all("token" not in t for t in listed) and made["id"] in {t["id"] for t in listed}
    ro = Api(flask_app.test_client(), made["token"])
    mine = people.ticket("ann")
    assert ro.get(f"{TICKETS}/{mine['id']}")[0] == 200
    for st, body in (ro.post(TICKETS, {"subject": "x"}), ro.patch(f"{TICKETS}/{mine['id']}", {"subject": "x"}),
                     ro.delete(f"{TICKETS}/{mine['id']}"), ro.post("/tokens", {"name": "x"}),
                     ro.post(f"{TICKETS}/{mine['id']}/shares", {"team": "east", "access": "read"})):
        assert st == 403, body
    # revoked: 401 from then on
    assert client.delete(f"/api/v1/tokens/{made['id']}", headers=api_headers).status_code == 204
    st, body = ro.get(f"{TICKETS}/{mine['id']}")
    assert st == 401 and body["error"]["code"] == "unauthorized"
    # expired: 401
    with flask_app.extensions["jimu"].engine.begin() as conn:
        later = users.create_token(conn, people.id("ann"), "soon", "write",
                                   expires_at=datetime.now(UTC) + timedelta(hours=1))
        conn.execute(st_.tokens.update().where(st_.tokens.c.id == later["id"])
                     .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        elsewhere = users.create_token(conn, people.id("ann"), "other app", "write", apps=["other"])
    assert Api(flask_app.test_client(), later["token"]).get(TICKETS)[0] == 401
    assert Api(flask_app.test_client(), "jimu_not-a-token").get(TICKETS)[0] == 401
    # a token for other apps: 403 here, and this app is not listed
    other = Api(flask_app.test_client(), elsewhere["token"])
    st, body = other.get(TICKETS)
    assert st == 403 and body["error"]["code"] == "forbidden"
    assert other.get(f"{TICKETS}/{mine['id']}")[0] == 403
    assert "perm" not in [a["app"] for a in other.get("/apps")[1]["items"]]
    # a deactivated user's tokens stop working
    people.api.patch(f"/users/{people.id('eve')}", {"active": False})
    assert people["eve"].get(TICKETS)[0] == 401


# ---------------------------------------------------------------- sign-in throttling
def test_ten_failed_sign_ins_lock_the_name_for_15_minutes(people, flask_app):
    password = people.users["sam"]["password"]
    codes = [_session(flask_app, "sam", "wrong-password", addr=f"10.0.0.{i}")[2].status_code for i in range(10)]
    assert codes == [401] * 10
    for addr in ("10.0.1.1", "10.0.1.2"):
        assert _session(flask_app, "sam", password, addr=addr)[2].status_code == 429   # the right password too
    with flask_app.extensions["jimu"].engine.begin() as conn:
        a = st_.login_attempts
        for rid, at in conn.execute(sa.select(a.c.id, a.c.at)).all():
            conn.execute(a.update().where(a.c.id == rid).values(at=at - timedelta(minutes=14)))
    assert _session(flask_app, "sam", password, addr="10.0.1.3")[2].status_code == 429   # 1 minute left
    with flask_app.extensions["jimu"].engine.begin() as conn:
        for rid, at in conn.execute(sa.select(a.c.id, a.c.at)).all():
            conn.execute(a.update().where(a.c.id == rid).values(at=at - timedelta(minutes=2)))
    assert _session(flask_app, "sam", password, addr="10.0.1.4")[2].status_code == 302
    st, log = people.api.get("/audit?action=login")
    assert sum(1 for e in log["items"] if "failed" in e["summary"]) == 10


def test_ten_failures_from_one_address_lock_that_address(people, flask_app):
    for i in range(10):
        assert _session(flask_app, f"nobody{i}", "x", addr="192.0.2.66")[2].status_code == 401
    assert _session(flask_app, "wes", people.users["wes"]["password"], addr="192.0.2.66")[2].status_code == 429
    assert _session(flask_app, "wes", people.users["wes"]["password"], addr="192.0.2.67")[2].status_code == 302


# ---------------------------------------------------------------- people, permission changes, audit
def test_people_management_is_admin_only_and_audited(people, flask_app):
    ann = people["ann"]
    for path in ("/users", "/teams", "/teams/east", "/audit", f"/users/{people.id('sam')}"):
        st, body = ann.get(path)
        assert st == 403, path
    assert ann.get(f"/users/{people.id('ann')}")[0] == 200                     # oneself
    assert ann.post("/teams", {"key": "x", "label": "x"})[0] == 403
    assert ann.patch(f"/users/{people.id('ann')}", {"role": "admin"})[0] == 403
    api = people.api
    st, _ = api.patch(f"/users/{people.id('sam')}", {"app_roles": {"perm": ["manager"]}, "teams": ["west"]})
    assert st == 200
    assert people["sam"].get(f"{TICKETS}/{people.ticket('ann')['id']}")[0] == 200    # now a manager
    st, _ = api.patch("/teams/west", {"supervisor": "mia"})
    st, log = api.get("/audit?action=permission&limit=5")
    first, second = log["items"][0], log["items"][1]
    assert first["summary"] == "changed team west" and first["after"]["supervisor"] == "mia"
    assert second["summary"].startswith("changed user sam") and second["after"]["app_roles"] == {"perm": ["manager"]}
    assert second["before"]["app_roles"] == {"perm": ["agent"]} and second["user"] == "admin"
    # the last active admin cannot be demoted or deactivated
    admin_id = next(u["id"] for u in api.get("/users")[1]["items"] if u["name"] == "admin")
    assert api.patch(f"/users/{admin_id}", {"role": "user"})[0] == 409
    assert api.patch(f"/users/{admin_id}", {"active": False})[0] == 409
    # a team cannot become its own ancestor
    api.post("/teams", {"key": "east_a", "label": "a", "parent": "east"})
    st, body = api.patch("/teams/east", {"parent": "east_a"})
    assert st == 422 and "parent" in body["error"]["details"]


def test_the_audit_log_exports_as_csv(people, flask_app):
    people.ticket("ann", subject="=HYPERLINK(\"http://x\")")
    resp = people.api.client.get("/api/v1/audit?format=csv&app=perm", headers=people.api._headers())
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    text = resp.get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0] == ["id", "at", "user", "action", "app", "entity", "record", "summary", "before", "after"]
    assert len(rows) > 2 and {r[4] for r in rows[1:]} == {"perm"}
    created = next(r for r in rows[1:] if r[3] == "create")
    assert created[2] == "admin" and '"subject": "=HYPERLINK' in created[9]
    assert all(not c.startswith(("=", "+", "@")) for r in rows[1:] for c in r)
    bad = people.api.client.get("/api/v1/audit?format=xml", headers=people.api._headers())
    assert bad.status_code == 422
    assert people["ann"].client.get("/api/v1/audit?format=csv", headers=people["ann"]._headers()).status_code == 403


# ---------------------------------------------------------------- no per-row queries
def test_the_permission_filter_adds_no_per_row_queries(people, flask_app):
    svc = flask_app.extensions["jimu"]
    ann = people["ann"]
    people["sam"].post(TICKETS, {"subject": "shared"})
    for i in range(10):
        people.ticket("ann", subject=f"t{i}")

    def count_list():
        statements = []

        def listener(conn, cursor, statement, params, context, executemany):
            statements.append(statement)

        event.listen(svc.engine, "before_cursor_execute", listener)
        try:
            st, page = ann.get(f"{TICKETS}?page_size=50&sort=-created_at")
        finally:
            event.remove(svc.engine, "before_cursor_execute", listener)
        assert st == 200
        return len(statements), len(page["items"]), page["total"]

    small = count_list()
    assert small[1] == 10
    with svc.engine.begin() as conn:
        table = svc.catalog.get(conn, "perm").tables["ticket"]
        now = datetime.now(UTC)
        owners = [people.id(n) for n in ("ann", "sam", "eve", "wes")]
        conn.execute(table.insert(), [{"subject": f"bulk {i}", "owner": owners[i % 4], "created_at": now,
                                       "updated_at": now, "_version": 1, "severity": "low"} for i in range(9_990)])
    big = count_list()
    assert big[1] == 50 and big[2] == 10 + 9_990 // 4 + (1 if 9_990 % 4 else 0)
    assert big[0] == small[0], (small, big)


def test_only_admins_change_an_apps_permissions(people, flask_app, login_as):
    builder = login_as("bld", "builder")
    st, draft = builder.get("/apps/perm/draft")
    assert st == 200
    draft["permissions"][0]["read"] = "all"                  # agents would read every ticket
    assert builder.put("/apps/perm/draft", draft)[0] == 200
    st, body = builder.post("/apps/perm/publish", {})
    assert st == 403 and "permissions" in body["error"]["details"]
    assert people["ann"].get(f"{TICKETS}/{people.ticket('sam')['id']}")[0] == 404
    draft.pop("permissions")                                  # removing them would open the app to all
    builder.put("/apps/perm/draft", draft)
    assert builder.post("/apps/perm/publish", {})[0] == 403
    # the rest of the metadata is the builder's to change
    st, draft = people.api.get("/apps/perm/draft")
    people.api.put("/apps/perm/draft", {**draft, "permissions": APP["permissions"]})
    st, draft = builder.get("/apps/perm/draft")
    draft["label"] = "新名称"
    builder.put("/apps/perm/draft", draft)
    assert builder.post("/apps/perm/publish", {})[0] == 200
    # an admin may, and it is audited as a permission change
    draft["permissions"][0]["read"] = "team"
    people.api.put("/apps/perm/draft", draft)
    assert people.api.post("/apps/perm/publish", {})[0] == 200
    st, log = people.api.get("/audit?action=permission&app=perm")
    assert log["items"][0]["summary"] == "changed the permissions of app perm"
    assert log["items"][0]["before"][0]["read"] == "own" and log["items"][0]["after"][0]["read"] == "team"
    assert people["ann"].get(f"{TICKETS}/{people.ticket('eve')['id']}")[0] == 200
