"""Hostile and wrong input on the records and metadata API: clear errors, nothing half-applied."""
from __future__ import annotations

import copy

import pytest

from tests.web.test_records_api import APP

BASE = {"app": "bad", "label": "x", "entities": [
    {"key": "customer", "label": "客户", "title_field": "name", "fields": [
        {"key": "name", "type": "text", "label": "名称", "required": True},
        {"key": "level", "type": "select", "label": "等级", "options": ["a", "b"]},
    ]},
]}


def mutate(fn):
    doc = copy.deepcopy(BASE)
    fn(doc)
    return doc


def fields(doc):
    return doc["entities"][0]["fields"]


# Each case: a mistake and the location its error must name.
BAD_METADATA = [
    # app key with upper case
    (lambda d: d.update(app="Bad"), "app"),
    # app key too short
    (lambda d: d.update(app="b"), "app"),
    # unknown top-level property
    (lambda d: d.update(entitiez=[]), "$"),
    # entity key is a word the URLs use
    (lambda d: d["entities"][0].update(key="draft"), "entities[0].key"),
    # entity key with a dash
    (lambda d: d["entities"][0].update(key="my-entity"), "entities[0].key"),
    # duplicate entity key
    (lambda d: d["entities"].append(copy.deepcopy(d["entities"][0])), "entities[1].key"),
    # field key is an SQL reserved word
    (lambda d: fields(d).append({"key": "select", "type": "text"}), "entities[0].fields[2].key"),
    # field key is a system field
    (lambda d: fields(d).append({"key": "created_at", "type": "text"}), "entities[0].fields[2].key"),
    # field key is a Python keyword
    (lambda d: fields(d).append({"key": "lambda", "type": "text"}), "entities[0].fields[2].key"),
    # field key longer than 40
    (lambda d: fields(d).append({"key": "a" * 41, "type": "text"}), "entities[0].fields[2].key"),
    # duplicate field key
    (lambda d: fields(d).append({"key": "name", "type": "text"}), "entities[0].fields[2].key"),
    # unknown field type
    (lambda d: fields(d).append({"key": "x", "type": "texty"}), "entities[0].fields[2].type"),
    # select without options
    (lambda d: fields(d).append({"key": "x", "type": "select"}), "entities[0].fields[2].options"),
    # select default that is not an option
    (lambda d: fields(d)[1].update(default="z"), "entities[0].fields[1].default"),
    # duplicate options
    (lambda d: fields(d)[1].update(options=["a", "a"]), "entities[0].fields[1].options"),
    # lookup without target
    (lambda d: fields(d).append({"key": "x", "type": "lookup"}), "entities[0].fields[2].target"),
    # lookup to a missing entity
    (lambda d: fields(d).append({"key": "x", "type": "lookup", "target": "nope"}), "entities[0].fields[2].target"),
    # title field that does not exist
    (lambda d: d["entities"][0].update(title_field="nope"), "entities[0].title_field"),
    # misspelt property
    (lambda d: fields(d)[0].update(requried=True), "entities[0].fields[0]"),
    # required that is not a boolean
    (lambda d: fields(d)[0].update(required="yes"), "entities[0].fields[0].required"),
    # min above max
    (lambda d: fields(d).append({"key": "n", "type": "number", "min": 5, "max": 1}), "entities[0].fields[2].min"),
    # number default that is not a number
    (lambda d: fields(d).append({"key": "n", "type": "number", "default": "many"}), "entities[0].fields[2].default"),
    # formula without expression
    (lambda d: fields(d).append({"key": "f", "type": "formula"}), "entities[0].fields[2].expression"),
    # formula referring to an unknown field
    (lambda d: fields(d).append({"key": "f", "type": "formula", "expression": "amout * 2"}),
     "entities[0].fields[2].expression"),
    # condition that is not boolean
    (lambda d: fields(d)[0].update(required_if="name + 1"), "entities[0].fields[0].required_if"),
    # form naming an unknown field
    (lambda d: d.update(forms=[{"key": "f", "entity": "customer", "layout": [{"fields": ["nope"]}]}]),
     "forms[0].layout[0].fields[0]"),
    # form on an unknown entity
    (lambda d: d.update(forms=[{"key": "f", "entity": "nope"}]), "forms[0].entity"),
    # bad time zone
    (lambda d: d.update(timezone="Mars/Olympus"), "timezone"),
    # permission naming an unknown field
    (lambda d: d.update(roles=["agent"], permissions=[{"role": "agent", "entity": "customer", "hidden": ["nope"]}]),
     "permissions[0].hidden[0]"),
    # fields is not a list
    (lambda d: d["entities"][0].update(fields={"a": 1}), "entities[0].fields"),
]


@pytest.mark.parametrize("mistake,location", BAD_METADATA)
def test_invalid_metadata_is_refused_with_its_location(api, mistake, location):
    st, body = api.post("/apps", mutate(mistake))
    assert st == 422, body
    locations = [d["location"] for d in body["error"]["details"]]
    assert location in locations, locations
    st, listing = api.get("/apps")
    assert listing["total"] == 0   # nothing stored


def test_all_errors_are_reported_together(api):
    doc = mutate(lambda d: (fields(d).append({"key": "select", "type": "text"}),
                            d["entities"][0].update(title_field="nope")))
    st, body = api.post("/apps", doc)
    locs = {d["location"] for d in body["error"]["details"]}
    assert {"entities[0].fields[2].key", "entities[0].title_field"} <= locs


@pytest.fixture
def crm(api, make_app):
    make_app(copy.deepcopy(APP))
    return api


@pytest.mark.parametrize("body,field", [
    ({"name": 5}, "name"),                              # a number for text: refused, not stringified
    ({"name": "x", "employees": "many"}, "employees"),
    ({"name": "x", "employees": True}, "employees"),
    ({"name": "x", "revenue": "1,2,3x"}, "revenue"),
    ({"name": "x", "vip": "perhaps"}, "vip"),
    ({"name": "x", "since": "31/01/2026"}, "since"),
    ({"name": "x", "since": "2026-02-30"}, "since"),
    ({"name": "x", "last_contact": "yesterday"}, "last_contact"),
    ({"name": "x", "industry": "farming"}, "industry"),
    ({"name": "x", "tags": "key_account,new"}, "tags"),
    ({"name": "x", "email": "not-an-email"}, "email"),
    ({"name": "x", "phone": "12"}, "phone"),
    ({"name": "x", "phone": "call me"}, "phone"),
    ({"name": "x", "website": "javascript:alert(1)"}, "website"),
    ({"name": "x", "rating": 9}, "rating"),
    ({"name": "x", "employees": -1}, "employees"),
    ({"name": "x" * 101}, "name"),
    ({"name": "x", "contacts": [{"title": "no person"}]}, "contacts[0].person"),
    ({"name": "x", "contacts": "nope"}, "contacts"),
    ({}, "name"),
])
def test_wrong_values_are_refused_naming_the_field(crm, body, field):
    st, out = crm.post("/apps/crm/customer", body)
    assert st == 422, out
    assert out["error"]["code"] == "validation_failed"
    assert field in out["error"]["details"], out


@pytest.mark.parametrize("key", ["id", "created_at", "created_by", "updated_at", "updated_by", "_version", "code"])
def test_system_and_computed_fields_cannot_be_written(crm, key):
    st, out = crm.post("/apps/crm/customer", {"name": "x", key: 1})
    assert st == 422 and key in out["error"]["details"]


def test_unknown_fields_are_refused_with_a_suggestion(crm):
    st, out = crm.post("/apps/crm/customer", {"name": "x", "emial": "a@b.cn"})
    assert st == 422 and "email" in out["error"]["details"]["emial"][0]


def test_sql_meta_characters_are_stored_verbatim(crm):
    nasty = "Robert'); DROP TABLE e_crm_customer; -- \" ` \\ % _ 中文"
    st, rec = crm.post("/apps/crm/customer", {"name": nasty, "notes": "<script>alert(1)</script>"})
    assert st == 201 and rec["name"] == nasty
    st, page = crm.get("/apps/crm/customer?filter=" + "name == 'x' or LEN(name) > 3")
    assert st == 200 and page["items"][0]["name"] == nasty
    st, page = crm.get("/apps/crm/customer?q=%25")
    assert st == 200 and page["total"] == 1   # the % is matched literally


def test_unparseable_and_wrongly_shaped_bodies(crm):
    st, out = crm.call("POST", "/apps/crm/customer", raw=b"{not json")
    assert st == 400 and out["error"]["code"] == "bad_request"
    st, out = crm.post("/apps/crm/customer", "just a string")
    assert st == 422
    st, out = crm.post("/apps/crm/customer", [1, 2])
    assert st == 422
    st, out = crm.patch("/apps/crm/customer/1", {"name": "x"}, headers={"If-Match": "abc"})
    assert st in (404, 422)


def test_unknown_things_answer_404(crm):
    assert crm.get("/apps/nope/customer")[0] == 404
    assert crm.get("/apps/crm/nope")[0] == 404
    assert crm.get("/apps/crm/customer/999999")[0] == 404
    assert crm.get("/apps/crm/customer/abc")[0] == 404
    assert crm.get("/apps/crm/customer/../../etc/passwd")[0] == 404


def test_bad_list_parameters(crm):
    assert crm.get("/apps/crm/customer?page_size=100000")[0] == 422
    assert crm.get("/apps/crm/customer?page=0")[0] == 422
    assert crm.get("/apps/crm/customer?sort=nope")[0] == 422
    assert crm.get("/apps/crm/customer?fields=nope")[0] == 422
    st, out = crm.get("/apps/crm/customer?filter=" + "name ==")
    assert st == 422 and "filter" in out["error"]["details"]
    st, out = crm.get("/apps/crm/customer?filter=" + "__import__('os')")
    assert st == 422
    assert crm.get("/apps/crm/customer?cursor=%%%")[0] == 400


def test_unauthenticated_requests_answer_401(flask_app):
    client = flask_app.test_client()
    for path in ("/api/v1/apps", "/api/v1/openapi.json", "/api/v1/apps/crm/customer", "/api/v1/users"):
        resp = client.get(path)
        assert resp.status_code == 401
        assert resp.get_json()["error"]["code"] == "unauthorized"
    resp = client.get("/api/v1/apps", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401
    resp = client.get("/api/v1/apps", headers={"Authorization": "Basic abc"})
    assert resp.status_code == 401


def test_only_builders_change_metadata(crm, login_as):
    user = login_as("plain", "user")
    st, out = user.post("/apps", copy.deepcopy(BASE))
    assert st == 403 and out["error"]["code"] == "forbidden"
    st, _ = user.put("/apps/crm/draft", {"app": "crm"})
    assert st == 403
    st, _ = user.post("/apps/crm/publish", {})
    assert st == 403


def test_oversized_body_answers_413(crm):
    st, out = crm.call("POST", "/apps/crm/customer", raw=b'{"name": "' + b"x" * (21 * 1024 * 1024) + b'"}')
    assert st == 413 and out["error"]["code"] == "payload_too_large"
