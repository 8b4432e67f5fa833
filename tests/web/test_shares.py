"""Sharing one record with a user or a team: who may share, what a share grants, IDOR, audit."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from runtime import system_tables as st_
from runtime import users
from tests.conftest import Api
from tests.web.people_setup import fast_hashing, setup_people  # noqa: F401 - a fixture


@pytest.fixture
def people(fast_hashing, flask_app, api, make_app):  # noqa: F811
    return setup_people(flask_app, api, make_app)


def test_a_read_share_lets_read_but_never_edit(people):
    t = people.ticket("ann")
    url = f"/apps/perm/ticket/{t['id']}"
    assert people["sam"].get(url)[0] == 404                      # another team's agent: as if absent
    st, share = people["ann"].post(url + "/shares", {"user": people.id("sam"), "access": "read"})
    assert st == 201, share
    assert share["user"] == people.id("sam") and share["access"] == "read" and share["user_name"] == "sam"
    st, rec = people["sam"].get(url)
    assert st == 200 and rec["id"] == t["id"]
    st, page = people["sam"].get("/apps/perm/ticket")
    assert [r["id"] for r in page["items"]] == [t["id"]]
    st, body = people["sam"].patch(url, {"subject": "mine now"})
    assert st == 403 and body["error"]["code"] == "forbidden"
    assert people["sam"].delete(url)[0] == 403
    assert people["sam"].post(url + "/shares", {"user": people.id("wes"), "access": "edit"})[0] == 403
    assert people.api.get(url)[1]["subject"] == "ticket of ann"


def test_an_edit_share_lets_edit_but_not_delete(people):
    t = people.ticket("ann")
    url = f"/apps/perm/ticket/{t['id']}"
    st, _ = people["ann"].post(url + "/shares", {"user": people.id("sam"), "access": "edit"})
    assert st == 201
    st, rec = people["sam"].patch(url, {"subject": "fixed by sam"})
    assert st == 200 and rec["subject"] == "fixed by sam"
    assert people["sam"].delete(url)[0] == 403                   # a share never grants a delete
    # changing the access of an existing share answers 200 and keeps one share
    st, share = people["ann"].post(url + "/shares", {"user": people.id("sam"), "access": "read"})
    assert st == 200 and share["access"] == "read"
    assert len(people["ann"].get(url + "/shares")[1]["items"]) == 1
    assert people["sam"].patch(url, {"subject": "again"})[0] == 403


def test_a_team_share_reaches_every_member_and_can_be_taken_back(people):
    t = people.ticket("sam")
    url = f"/apps/perm/ticket/{t['id']}"
    for name in ("ann", "eve", "wes"):
        assert people[name].get(url)[0] == 404
    st, share = people["sam"].post(url + "/shares", {"team": "east", "access": "read"})
    assert st == 201 and share["team"] == "east"
    assert people["ann"].get(url)[0] == 200 and people["eve"].get(url)[0] == 200
    assert people["wes"].get(url)[0] == 404
    st, listing = people["ann"].get(url + "/shares")
    assert st == 200 and [s["team"] for s in listing["items"]] == ["east"]
    assert people["ann"].delete(f"{url}/shares/{share['id']}")[0] == 403   # a reader cannot unshare
    assert people["sam"].delete(f"{url}/shares/{share['id']}")[0] == 204
    assert people["ann"].get(url)[0] == 404
    assert people["sam"].delete(f"{url}/shares/{share['id']}")[0] == 404


def test_shares_of_an_unreadable_record_answer_404(people):
    t = people.ticket("sam")
    url = f"/apps/perm/ticket/{t['id']}/shares"
    st, share = people.api.post(url, {"user": people.id("ben"), "access": "read"})
    assert st == 201
    for call in (lambda c: c.get(url), lambda c: c.post(url, {"user": people.id("ann"), "access": "read"}),
                 lambda c: c.delete(f"{url}/{share['id']}")):
        st, body = call(people["ann"])
        assert st == 404 and body["error"]["code"] == "not_found"
    assert people["ann"].get("/apps/perm/ticket/999999/shares")[0] == 404
    assert people["ann"].get("/apps/perm/ticket/abc/shares")[0] == 404
    # a share id of another record is not found on this one
    mine = people.ticket("ann")
    st, _ = people["ann"].delete(f"/apps/perm/ticket/{mine['id']}/shares/{share['id']}")
    assert st == 404


@pytest.mark.parametrize("body, field", [
    ({"access": "read"}, "user"),                                   # nobody to share with
    ({"user": 1, "team": "east", "access": "read"}, "user"),        # both
    ({"user": 999999, "access": "read"}, "user"),                   # no such user
    ({"user": "ann", "access": "read"}, "user"),                    # a name, not an id
    ({"team": "nope", "access": "read"}, "team"),                   # no such team
    ({"team": "east", "access": "admin"}, "access"),                # unknown access
    ({"team": "east", "access": "read", "owner": 1}, "owner"),      # unknown key
])
def test_bad_share_bodies_answer_422(people, body, field):
    t = people.ticket("ann")
    st, out = people["ann"].post(f"/apps/perm/ticket/{t['id']}/shares", body)
    assert st == 422 and field in out["error"]["details"], out


def test_share_changes_are_audited_and_on_the_timeline(people):
    t = people.ticket("ann")
    url = f"/apps/perm/ticket/{t['id']}"
    st, share = people["ann"].post(url + "/shares", {"user": people.id("sam"), "access": "edit"})
    people["ann"].delete(f"{url}/shares/{share['id']}")
    st, log = people.api.get(f"/audit?action=share&record={t['id']}")
    assert st == 200
    assert [e["summary"] for e in log["items"]] == ["stopped sharing with user sam", "shared with user sam (edit)"]
    assert log["items"][1]["user"] == "ann" and log["items"][1]["after"]["access"] == "edit"
    st, tl = people["ann"].get(url + "/timeline")
    assert [i["kind"] for i in tl["items"]][:2] == ["share", "share"]


def test_a_deleted_record_takes_its_shares_along(people):
    t = people.ticket("ann")
    url = f"/apps/perm/ticket/{t['id']}"
    people["ann"].post(url + "/shares", {"user": people.id("sam"), "access": "read"})
    assert people["ann"].delete(url)[0] == 204
    st, log = people.api.get(f"/audit?record={t['id']}&entity=ticket")
    assert log["items"][0]["action"] == "delete"
    with people.flask_app.extensions["jimu"].engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(st_.shares)).scalar_one() == 0


def test_a_read_token_cannot_share(people, flask_app):
    t = people.ticket("ann")
    with flask_app.extensions["jimu"].engine.begin() as conn:
        token = users.create_token(conn, people.id("ann"), "ro", "read")["token"]
    ro = Api(flask_app.test_client(), token)
    url = f"/apps/perm/ticket/{t['id']}/shares"
    assert ro.get(url)[0] == 200
    assert ro.post(url, {"user": people.id("sam"), "access": "read"})[0] == 403
