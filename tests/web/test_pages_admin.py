"""Admin pages (people, permissions, audit) and the my-API-tokens page: admins only (403 for the
others, on pages and posts alike), login and CSRF required, writes through the people service
(validation, nothing half-written, audit), hostile input inert, audit filters and CSV export,
tokens that work as Bearer and stop working when revoked."""
from __future__ import annotations

import copy
import csv
import io
import re
from html import unescape

import pytest
import sqlalchemy as sa

from runtime import system_tables as st
from tests.web.pages_support import CRM, csrf_of, sign_in
from tests.web.people_setup import fast_hashing  # noqa: F401 - a fixture

ADMIN_PAGES = ["/admin/people", "/admin/people/users/new", "/admin/people/teams/new", "/admin/permissions",
               "/admin/audit", "/admin/audit?action=login&format=csv"]
XSS = "<script>alert('x')</script>"
SQLISH = "Robert'); DROP TABLE jimu_users;-- \" OR 1=1"


@pytest.fixture
def admin(fast_hashing, flask_app, make_app):  # noqa: F811
    make_app(copy.deepcopy(CRM))
    pc = sign_in(flask_app)
    assert pc.post("/lang/en").status_code == 302      # the page messages below are the English ones
    return pc


def count(flask_app, table) -> int:
    with flask_app.extensions["jimu"].engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def user_row(flask_app, name: str) -> dict:
    from runtime import users
    with flask_app.extensions["jimu"].engine.connect() as conn:
        row = users.find_user(conn, name)
        return users.get_user(conn, row.id) if row is not None else None


def team_row(flask_app, key: str) -> dict | None:
    from runtime import users
    with flask_app.extensions["jimu"].engine.connect() as conn:
        try:
            return users.get_team(conn, key)
        except Exception:  # noqa: BLE001 - NotFound
            return None


def marked_invalid(html: str, field: str) -> bool:
    return bool(re.search(rf'<(?:input|select)[^>]*name="{field}"[^>]*aria-invalid="true"'
                          rf'|<fieldset id="[a-z]+-{field}"[^>]*aria-invalid="true"', html))


def password_works(flask_app, name: str, password: str) -> bool:
    client = flask_app.test_client()
    token = csrf_of(client.get("/login").text)
    resp = client.post("/login", data={"username": name, "password": password, "csrf_token": token})
    return resp.status_code == 302


def add_team(pc, key: str, **kw):
    return pc.post("/admin/people/teams/new", {"key": key, "label": kw.pop("label", key), **kw})


def add_user(pc, name: str, **kw):
    """Add a user on the page, with the password ``sign_in`` of pages_support uses by default."""
    return pc.post("/admin/people/users/new", {"name": name, "password": kw.pop("password", f"Passw0rd-{name}"),
                                               "role": kw.pop("role", "user"), **kw})


# ---------------------------------------------------------------- who may
def test_no_session_redirects_to_login(flask_app, admin):
    client = flask_app.test_client()
    for path in [*ADMIN_PAGES, "/admin/people/users/1", "/admin/people/teams/east", "/me/tokens"]:
        resp = client.get(path)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"], path
        assert "<table" not in resp.text and "客户管理" not in resp.text


def test_non_admins_get_403_on_every_admin_page_and_post(flask_app, admin):
    assert add_team(admin, "east").status_code == 302
    uid = user_row(flask_app, "admin")["id"]
    for role in ("user", "builder"):
        pc = sign_in(flask_app, f"someone_{role}", role)
        for path in [*ADMIN_PAGES, f"/admin/people/users/{uid}", "/admin/people/teams/east"]:
            resp = pc.get(path)
            assert resp.status_code == 403, (role, path)
            assert "<table" not in resp.text and "<form method=\"post\" class=\"stack" not in resp.text
        users_before, teams_before, audit_before = (count(flask_app, t) for t in (st.users, st.teams, st.audit))
        posts = [("/admin/people/users/new", {"name": "mallory", "password": "Secret-123", "role": "admin"}),
                 ("/admin/people/teams/new", {"key": "evil", "label": "x"}),
                 (f"/admin/people/users/{uid}", {"role": "user", "active": ""}),
                 (f"/admin/people/users/{uid}/sign-out", {}),
                 ("/admin/people/teams/east", {"label": "hacked", "members": [f"someone_{role}"]}),
                 # even malformed: the admin check comes before any parsing
                 ("/admin/people/users/new", {"name": "", "role": "nonsense"})]
        for path, data in posts:
            resp = pc.post(path, data)          # with a valid CSRF token
            assert resp.status_code == 403, (role, path)
        assert (count(flask_app, st.users), count(flask_app, st.teams), count(flask_app, st.audit)) == \
            (users_before, teams_before, audit_before)
        assert team_row(flask_app, "east")["label"] == "east" and user_row(flask_app, "admin")["role"] == "admin"
        assert 'href="/admin/people"' not in pc.get("/").text        # no admin links in the nav
        assert 'href="/me/tokens"' in pc.get("/").text
    assert 'href="/admin/people"' in admin.get("/").text and 'href="/admin/audit"' in admin.get("/").text


def test_posts_without_the_csrf_token_are_refused(flask_app, admin):
    users_before, tokens_before = count(flask_app, st.users), count(flask_app, st.tokens)
    for path, data in (("/admin/people/users/new", {"name": "x1", "password": "Secret-123", "role": "user"}),
                       ("/admin/people/teams/new", {"key": "east"}), ("/me/tokens", {"name": "t"}),
                       ("/me/tokens/1/revoke", {})):
        assert admin.client.post(path, data=data).status_code == 403, path
        assert admin.client.post(path, data={**data, "csrf_token": "forged"}).status_code == 403, path
    assert count(flask_app, st.users) == users_before and count(flask_app, st.teams) == 0
    assert count(flask_app, st.tokens) == tokens_before
    for path in ("/admin/people", "/admin/people/users/new", "/admin/people/teams/new", "/me/tokens"):
        html = admin.get(path).text
        for form in re.findall(r"<form\b[^>]*>.*?</form>", html, flags=re.S):
            if 'method="post"' in form:
                assert 'name="csrf_token"' in form, (path, form[:120])


# ---------------------------------------------------------------- people
def test_a_user_added_on_the_page_can_sign_in_with_teams_and_app_roles(flask_app, admin, api):
    assert add_team(admin, "east", label="华东").status_code == 302
    new = admin.get("/admin/people/users/new").text
    assert 'value="crm:agent"' in new and 'value="east"' in new    # roles of the published app, teams
    resp = add_user(admin, "王小明", password="Secret-王-123", role="builder", teams=["east"],
                    app_roles=["crm:agent"], display_name="小明", email="ming@example.cn")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/admin/people")
    assert "王小明" in admin.get("/admin/people").text
    user = user_row(flask_app, "王小明")
    assert (user["role"], user["teams"], user["app_roles"], user["display_name"], user["email"]) == \
        ("builder", ["east"], {"crm": ["agent"]}, "小明", "ming@example.cn")
    assert password_works(flask_app, "王小明", "Secret-王-123")
    st_, log = api.get("/audit?action=permission")
    assert any(e["summary"] == "created user 王小明 (builder)" and e["user"] == "admin" for e in log["items"])


CASES = [  # (what is wrong, form, the message the page shows, field marked invalid)
    ("duplicate user", {"name": "admin"}, "exists already", "name"),
    ("unknown team", {"name": "ann", "teams": ["nowhere"]}, "Unknown team(s): nowhere", "teams"),
    ("missing password", {"name": "ann", "password": ""}, "is required", "password"),
    ("short password", {"name": "ann", "password": "short"}, "8–1000", "password"),
    ("bad platform role", {"name": "ann", "role": "superuser"}, "must be one of admin, builder, user", "role"),
    ("role of no app", {"name": "ann", "app_roles": ["crm:owner"]}, "Unknown app role: crm:owner", "app_roles"),
    ("bad user name", {"name": "a b;--"}, "Invalid user", "name"),
]


@pytest.mark.parametrize("what,form,message,field", CASES, ids=[c[0] for c in CASES])
def test_wrong_user_input_shows_the_message_and_writes_nothing(flask_app, admin, what, form, message, field):
    before = (count(flask_app, st.users), count(flask_app, st.team_members), count(flask_app, st.app_roles),
              count(flask_app, st.audit))
    data = {"password": "Secret-typed-42", "role": "user", "display_name": "Ann 安", **form}
    resp = admin.post("/admin/people/users/new", data)
    assert resp.status_code == 422
    html = unescape(resp.text)
    assert message in html and 'role="alert"' in resp.text
    assert marked_invalid(resp.text, field)
    assert 'value="Ann 安"' in html and f'value="{form["name"]}"' in html      # what was typed is kept
    assert "Secret-typed-42" not in html                                      # never the password
    assert (count(flask_app, st.users), count(flask_app, st.team_members), count(flask_app, st.app_roles),
            count(flask_app, st.audit)) == before


def test_hostile_input_is_inert_and_stored_verbatim(flask_app, admin, api):
    label = XSS + " 华东 " + SQLISH
    assert add_team(admin, "east", label=label).status_code == 302
    assert add_user(admin, "o.neil-1", display_name=XSS + SQLISH, teams=["east"]).status_code == 302
    assert team_row(flask_app, "east")["label"] == label
    assert user_row(flask_app, "o.neil-1")["display_name"] == XSS + SQLISH
    for path in ("/admin/people", "/admin/people/teams/east", "/admin/people/users/new",
                 f"/admin/people/users/{user_row(flask_app, 'o.neil-1')['id']}", "/admin/audit"):
        html = admin.get(path).text
        assert "<script>alert" not in html, path
        assert "&lt;script&gt;alert(" in html, path
    # a name that is markup is refused, and the refusal shows it inert
    resp = add_user(admin, XSS)
    assert resp.status_code == 422 and "<script>alert" not in resp.text and "&lt;script&gt;" in resp.text
    assert count(flask_app, st.users) == 2
    assert api.get("/users")[0] == 200                                        # the table is still there


def test_editing_a_user_changes_only_what_changed(flask_app, admin, api):
    add_team(admin, "east")
    add_team(admin, "west")
    add_user(admin, "ann", teams=["east"], app_roles=["crm:agent"])
    uid = user_row(flask_app, "ann")["id"]
    from runtime import users
    with flask_app.extensions["jimu"].engine.begin() as conn:   # a role this page does not offer
        conn.execute(st.app_roles.insert().values(user_id=uid, app="legacy", role="clerk"))
    page = admin.get(f"/admin/people/users/{uid}").text
    assert "legacy" in page and 'value="crm:agent" checked' in page and "Secret" not in page
    ann = sign_in(flask_app, "ann", "user")          # an existing session of ann
    audit_before = count(flask_app, st.audit)
    same = {"role": "user", "teams": ["east"], "app_roles": ["crm:agent"], "active": "1", "display_name": "ann",
            "email": ""}
    resp = admin.post(f"/admin/people/users/{uid}", same)
    assert resp.status_code == 302 and count(flask_app, st.audit) == audit_before
    assert ann.get("/").status_code == 200   # nothing changed: still signed in
    resp = admin.post(f"/admin/people/users/{uid}", {**same, "teams": ["west"], "app_roles": []})
    assert resp.status_code == 302
    user = user_row(flask_app, "ann")
    assert user["teams"] == ["west"] and user["app_roles"] == {"legacy": ["clerk"]}
    assert ann.get("/").status_code == 200   # memberships do not sign out
    # reset the password: the old one stops working, sessions end
    assert admin.post(f"/admin/people/users/{uid}", {**same, "password": "Brand-new-77"}).status_code == 302
    assert ann.get("/").status_code == 302
    assert password_works(flask_app, "ann", "Brand-new-77") and not password_works(flask_app, "ann", "Passw0rd-ann")
    # disable, then enable
    assert admin.post(f"/admin/people/users/{uid}", {**same, "active": ""}).status_code == 302
    assert not password_works(flask_app, "ann", "Brand-new-77")
    assert "Disabled" in admin.get("/admin/people", headers={"Accept-Language": "en"}).text
    assert admin.post(f"/admin/people/users/{uid}", same).status_code == 302
    assert password_works(flask_app, "ann", "Brand-new-77")
    # the last admin cannot step down: message on the form, nothing written
    admin_id = user_row(flask_app, "admin")["id"]
    resp = admin.post(f"/admin/people/users/{admin_id}", {"role": "user", "active": "1", "display_name": "admin"})
    assert resp.status_code == 422 and "last active admin" in resp.text
    assert user_row(flask_app, "admin")["role"] == "admin"
    with flask_app.extensions["jimu"].engine.connect() as conn:
        assert users.session_version(conn, admin_id) == 1
    assert admin.get("/admin/people/users/99999").status_code == 404


def test_sign_out_everywhere_ends_the_sessions_and_is_audited(flask_app, admin, api):
    add_user(admin, "ann")
    ann = sign_in(flask_app, "ann", "user")
    assert ann.get("/").status_code == 200
    uid = user_row(flask_app, "ann")["id"]
    resp = admin.post(f"/admin/people/users/{uid}/sign-out")
    assert resp.status_code == 302
    assert ann.get("/").status_code == 302
    st_, log = api.get("/audit?action=permission")
    assert any(e["summary"] == "signed out ann everywhere" for e in log["items"])
    assert password_works(flask_app, "ann", "Passw0rd-ann")      # they may sign in again


def test_teams_are_added_and_edited_on_the_page(flask_app, admin):
    add_user(admin, "ann")
    add_user(admin, "ben")
    resp = add_team(admin, "east", label="华东", members=["ann", "ben"], supervisor="ben")
    assert resp.status_code == 302
    assert team_row(flask_app, "east") == {"key": "east", "label": "华东", "members": ["ann", "ben"],
                                           "supervisor": "ben", "parent": None}
    assert add_team(admin, "shanghai", label="上海", parent="east").status_code == 302
    resp = admin.post("/admin/people/teams/east", {"label": "华东区", "members": ["ann"], "supervisor": ""})
    assert resp.status_code == 302
    assert team_row(flask_app, "east") == {"key": "east", "label": "华东区", "members": ["ann"],
                                           "supervisor": None, "parent": None}
    html = admin.get("/admin/people").text
    assert "华东区" in html and "上海" in html
    # a cycle, an unknown member, a duplicate key, a bad key: the message, nothing written
    bad = [("/admin/people/teams/east", {"label": "x", "parent": "shanghai"}, "would make a cycle"),
           ("/admin/people/teams/east", {"label": "x", "members": ["ghost"]}, "unknown user(s): ghost"),
           ("/admin/people/teams/new", {"key": "east", "label": "again"}, "exists already"),
           ("/admin/people/teams/new", {"key": "East Team", "label": "again"}, "Invalid team"),
           ("/admin/people/teams/new", {"key": "north", "supervisor": "ghost"}, "unknown user")]
    audit_before = count(flask_app, st.audit)
    for path, data, message in bad:
        resp = admin.post(path, data)
        assert resp.status_code == 422 and message in unescape(resp.text), (path, data)
        assert f'value="{data["label"]}"' in resp.text if "label" in data else True
    assert team_row(flask_app, "east")["label"] == "华东区" and team_row(flask_app, "north") is None
    assert count(flask_app, st.teams) == 2 and count(flask_app, st.audit) == audit_before
    assert admin.get("/admin/people/teams/nowhere").status_code == 404


# ---------------------------------------------------------------- permissions
def test_the_permission_matrix_of_each_published_app(flask_app, admin, make_app):
    make_app({"app": "open_app", "label": "开放应用", "entities": [
        {"key": "note", "label": "笔记", "title_field": "name",
         "fields": [{"key": "name", "type": "text", "label": "名称"}]}]})
    html = admin.get("/admin/permissions", headers={"Accept-Language": "en"}).text
    crm = html[html.index('data-app="crm"'):html.index('data-app="open_app"')]
    assert 'href="/builder/crm#sec-permissions"' in crm
    row = re.search(r"<caption>客户.*?<th scope=\"row\" class=\"mono\">agent</th>(.*?)</tr>", crm, flags=re.S).group(1)
    cells = [unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]
    assert cells == ["Yes", "own", "own", "—", "—", "成本", "—"]   # create read update delete export hidden read-only
    assert "No permissions: every signed-in user" in html[html.index('data-app="open_app"'):]


# ---------------------------------------------------------------- audit
def _audit_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-id="(\d+)"', html)]


def test_audit_filters_narrow_the_list_and_it_pages(flask_app, admin, api, login_as):
    add_user(admin, "ann", app_roles=["crm:agent"])
    ann = login_as("ann")
    st_, rec = ann.post("/apps/crm/customer", {"name": "甲公司"})
    assert st_ == 201
    assert ann.patch(f"/apps/crm/customer/{rec['id']}", {"name": "乙公司"})[0] == 200
    assert api.post("/apps/crm/customer", {"name": "丙公司"})[0] == 201
    everything = _audit_ids(admin.get("/admin/audit").text)
    assert everything == sorted(everything, reverse=True) and len(everything) >= 5     # newest first

    html = admin.get("/admin/audit?user=ann&app=crm", headers={"Accept-Language": "en"}).text
    assert len(_audit_ids(html)) == 2 and 'data-action="create"' in html and 'data-action="update"' in html
    assert "<del>甲公司</del> → <ins>乙公司</ins>" in html and '<span class="fname">名称</span>' in html
    html = admin.get(f"/admin/audit?app=crm&entity=customer&record={rec['id']}&action=update").text
    assert len(_audit_ids(html)) == 1 and f'href="/apps/crm/customer/{rec["id"]}"' in html
    permission = admin.get("/admin/audit?action=permission").text
    assert set(re.findall(r'data-action="(\w+)"', permission)) == {"permission"} and "created user ann" in permission
    assert _audit_ids(admin.get("/admin/audit?since=2999-01-01").text) == []
    assert len(_audit_ids(admin.get("/admin/audit?since=2000-01-01").text)) == len(everything)
    for query, field in (("record=abc", "record"), ("user=nobody", "user"), ("since=yesterday", "since")):
        resp = admin.get(f"/admin/audit?{query}")
        assert resp.status_code == 422 and f'id="err-{field}"' in resp.text and _audit_ids(resp.text) == []

    for i in range(60):   # more than a page
        assert api.post("/apps/crm/customer", {"name": f"客户{i}"})[0] == 201
    first = admin.get("/admin/audit?app=crm&action=create").text
    assert len(_audit_ids(first)) == 50
    older = unescape(re.search(r'href="([^"]+)" rel="next"', first).group(1))
    assert "app=crm" in older and "action=create" in older
    second = _audit_ids(admin.get(older).text)
    assert len(second) == 12 and max(second) < min(_audit_ids(first))
    assert 'rel="next"' not in admin.get(older).text


def test_the_audit_export_link_gives_csv_with_bom_and_inert_formulas(flask_app, admin, api):
    assert add_user(admin, "@cmd", app_roles=["crm:agent"]).status_code == 302
    assert add_user(admin, "-1").status_code == 302
    from tests.conftest import Api
    with flask_app.extensions["jimu"].engine.begin() as conn:
        from runtime import users
        token = users.create_token(conn, users.find_user(conn, "@cmd").id, "t")["token"]
    evil = Api(flask_app.test_client(), token)
    assert evil.post("/apps/crm/customer", {"name": "=HYPERLINK(\"http://x\",\"点我\")"})[0] == 201
    assert api.post("/apps/crm/customer", {"name": "普通客户"})[0] == 201
    html = admin.get("/admin/audit?app=crm&user=%40cmd").text
    href = unescape(re.search(r'id="audit-export" href="([^"]+)"', html).group(1))
    assert href.startswith("/api/v1/audit?") and "format=csv" in href and "app=crm" in href
    resp = admin.get(href)
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert resp.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(resp.data.decode("utf-8-sig"))))
    assert rows[0][:4] == ["id", "at", "user", "action"] and len(rows) == 2      # filtered like the page
    assert rows[1][2] == "'@cmd" and rows[1][3] == "create" and "=HYPERLINK" in rows[1][9]
    assert all(not c.startswith(("=", "+", "-", "@")) for r in rows for c in r)
    since = admin.get("/admin/audit?since=2000-01-01&action=permission").text
    href = unescape(re.search(r'id="audit-export" href="([^"]+)"', since).group(1))
    rows = list(csv.reader(io.StringIO(admin.get(href).data.decode("utf-8-sig"))))
    assert {r[3] for r in rows[1:]} == {"permission"} and any(r[2] == "admin" for r in rows[1:])
    assert any("created user -1" in r[7] for r in rows[1:])
    assert all(not c.startswith(("=", "+", "-", "@")) for r in rows for c in r)


# ---------------------------------------------------------------- my API tokens
def test_a_token_made_on_the_page_works_until_revoked(flask_app, admin):
    from tests.conftest import Api
    add_user(admin, "ann", app_roles=["crm:agent"])
    ann = sign_in(flask_app, "ann", "user")
    page = ann.get("/me/tokens").text
    assert 'value="crm"' in page and "jimu_" not in page
    resp = ann.post("/me/tokens", {"name": "ERP 同步 " + XSS, "scope": "read", "apps": ["crm"]})
    assert resp.status_code == 200 and "<script>alert" not in resp.text
    secret = re.search(r'id="token-secret" class="mono" value="([^"]+)"', resp.text).group(1)
    bearer = Api(flask_app.test_client(), secret)
    st_, body = bearer.get("/apps")
    assert st_ == 200 and [a["app"] for a in body["items"]] == ["crm"]
    assert bearer.post("/apps/crm/customer", {"name": "x"})[0] == 403          # read only
    listed = ann.get("/me/tokens").text
    assert secret not in listed and "ERP 同步 &lt;script&gt;" in listed        # shown once, listed after
    tid = re.search(r'<tr data-token="(\d+)" data-status="active">', listed).group(1)
    # another user cannot revoke it
    bob = sign_in(flask_app, "bob", "user")
    assert bob.post(f"/me/tokens/{tid}/revoke").status_code == 404
    assert bearer.get("/apps")[0] == 200
    resp = ann.post(f"/me/tokens/{tid}/revoke")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/me/tokens")
    assert bearer.get("/apps")[0] == 401
    assert f'<tr data-token="{tid}" data-status="revoked">' in ann.get("/me/tokens").text


@pytest.mark.parametrize("form,message,field", [
    ({"name": "", "scope": "read"}, "1–200", "name"),
    ({"name": "t", "scope": "admin"}, "read or write", "scope"),
    ({"name": "t", "scope": "read", "expires": "2000-01-01"}, "is in the past", "expires"),
    ({"name": "t", "scope": "read", "expires": "tomorrow"}, "2026-01-31", "expires"),
    ({"name": "t", "scope": "write", "apps": ["crm", "secret_app"]}, "Unknown app: secret_app", "apps"),
], ids=["no name", "bad scope", "expired", "not a date", "an app I cannot use"])
def test_wrong_token_requests_show_the_message_and_create_nothing(flask_app, admin, form, message, field):
    before = count(flask_app, st.tokens)
    resp = admin.post("/me/tokens", form)
    assert resp.status_code == 422 and message in unescape(resp.text)
    assert marked_invalid(resp.text, field)
    assert 'id="token-secret"' not in resp.text and count(flask_app, st.tokens) == before


def test_a_token_with_an_expiry_day_is_listed_with_it(flask_app, admin):
    resp = admin.post("/me/tokens", {"name": "nightly", "scope": "write", "expires": "2999-12-31"})
    assert resp.status_code == 200
    html = admin.get("/me/tokens").text
    assert "2999-12-31 00:00" in html and "nightly" in html
