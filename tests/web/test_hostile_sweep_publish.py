"""Hostile sequences on metadata found by sweeping from outside: entities and fields that come back
under a key a column still holds, keys passed round, packs whose YAML is not text, people bodies
past the columns' widths, and the OpenAPI document itself. Each ends in a clear answer, not a 500."""
from __future__ import annotations

import copy
import io
import zipfile

import pytest

DOC = {"app": "crm", "label": "客户", "entities": [
    {"key": "customer", "label": "客户", "title_field": "name", "fields": [
        {"key": "name", "type": "text", "label": "名称"},
        {"key": "code", "type": "text", "label": "代码", "indexed": True},
        {"key": "size", "type": "number", "label": "规模"},
        {"key": "lines", "type": "subtable", "label": "明细", "fields": [{"key": "qty", "type": "number"}]},
    ]},
]}


@pytest.fixture
def crm(api, make_app):
    make_app(copy.deepcopy(DOC))
    st, rec = api.post("/apps/crm/customer", {"name": "甲", "code": "A1", "size": 3, "lines": [{"qty": 2}]})
    assert st == 201, rec
    return api


def _publish(api, doc) -> dict:
    st, out = api.put("/apps/crm/draft", doc)
    assert st == 200, out
    st, out = api.post("/apps/crm/publish", {})
    assert st == 200, out
    return out


def test_an_entity_retired_and_brought_back_keeps_its_data(crm):
    _publish(crm, {"app": "crm", "label": "空"})                 # every entity retired, tables kept
    assert crm.get("/apps/crm/customer")[0] == 404
    st, out = crm.post("/apps/crm/revisions/1/restore")
    assert st == 200, out
    rec = crm.get("/apps/crm/customer")[1]["items"][0]
    assert (rec["name"], rec["code"], rec["size"], rec["lines"][0]["qty"]) == ("甲", "A1", 3, 2)
    assert crm.post("/apps/crm/customer", {"name": "乙", "lines": [{"qty": 1}]})[0] == 201


def test_a_returning_entity_may_come_back_changed(crm):
    st, draft = crm.get("/apps/crm/draft")
    _publish(crm, {"app": "crm", "label": "空"})
    back = copy.deepcopy(draft)
    fields = back["entities"][0]["fields"]
    fields[0]["key"] = "title"                                   # renamed while away
    back["entities"][0]["title_field"] = "title"
    del fields[2]                                                # size retired on the way back
    fields.append({"key": "size", "type": "text", "label": "新规模"})   # and a new field takes its key
    out = _publish(crm, back)
    assert out["summary"]["columns_renamed"] == 1 and out["summary"]["columns_retired"] == 1
    rec = crm.get("/apps/crm/customer")[1]["items"][0]
    assert rec["title"] == "甲" and rec["size"] is None


def test_a_field_removed_and_added_back_under_its_key(crm):
    st, draft = crm.get("/apps/crm/draft")
    without = copy.deepcopy(draft)
    without["entities"][0]["fields"] = [f for f in without["entities"][0]["fields"] if f["key"] != "code"]
    assert crm.put("/apps/crm/draft", without)[0] == 200        # the draft forgets the field's id
    again = copy.deepcopy(without)
    again["entities"][0]["fields"].append({"key": "code", "type": "text", "label": "新代码"})
    out = _publish(crm, again)
    assert out["summary"]["columns_retired"] == 1 and out["summary"]["columns_added"] == 1
    rec = crm.get("/apps/crm/customer")[1]["items"][0]
    assert rec["code"] is None and rec["name"] == "甲"
    assert crm.post("/apps/crm/customer", {"name": "乙", "code": "B2"})[0] == 201


def test_two_fields_may_swap_keys(crm):
    st, draft = crm.get("/apps/crm/draft")
    fields = draft["entities"][0]["fields"]
    fields[0]["key"], fields[1]["key"] = "code", "name"          # ids kept: both columns renamed
    out = _publish(crm, draft)
    assert out["summary"]["columns_renamed"] == 2
    assert sorted(out["steps"]) == ["rename field customer.code → name (data kept)",
                                    "rename field customer.name → code (data kept)"]
    rec = crm.get("/apps/crm/customer")[1]["items"][0]
    assert (rec["code"], rec["name"]) == ("甲", "A1")
    assert crm.get("/apps/crm/customer?filter=" + "name == 'A1'")[1]["total"] == 1


# ---------------------------------------------------------------- packs whose YAML is not text
def _pack(label: str, version: str = "1.0.0") -> bytes:
    yaml = (f"pack: odd\nversion: {version}\ntitle: t\napp:\n  app: oddapp\n  label: {label}\n  entities:\n"
            "    - key: thing\n      label: t\n      fields:\n        - {key: name, type: text}\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("pack.yaml", yaml)
    return buf.getvalue()


@pytest.mark.parametrize("label, version", [
    ('"\\ud800"', "1.0.0"),              # an escaped half of a UTF-16 pair
    ('"a\\0b"', "1.0.0"),                # NUL: PostgreSQL text cannot hold it
    ("x", "9" * 5000),                   # an integer past what Python converts from text
])
def test_packs_whose_yaml_is_not_text_are_refused(api, label, version):
    for path in ("/packs/plan", "/packs/import"):
        resp = api.client.post("/api/v1" + path, data=_pack(label, version), content_type="application/zip",
                               headers=api._headers())
        assert resp.status_code == 422, resp.get_json()
        assert resp.get_json()["error"]["code"] == "validation_failed"
    assert api.get("/apps")[1]["items"] == []


# ---------------------------------------------------------------- people past the columns' widths
@pytest.mark.parametrize("body, field", [
    ({"app_roles": {"a" * 41: ["agent"]}}, "app_roles"),     # an app key is at most 40 characters
    ({"app_roles": {"": ["agent"]}}, "app_roles"),
    ({"locale": "x" * 11}, "locale"),
    ({"teams": [f"t{i}" for i in range(70_000)]}, "teams"),          # past any bind limit
])
def test_people_bodies_past_the_columns_are_refused(api, login_as, body, field):
    login_as("ann")
    uid = next(u["id"] for u in api.get("/users")[1]["items"] if u["name"] == "ann")
    st, out = api.patch(f"/users/{uid}", body)
    assert st == 422 and field in out["error"]["details"], out


def test_a_team_of_more_members_than_one_query_binds(api):
    st, out = api.post("/teams", {"key": "big", "members": [f"u{i}" for i in range(70_000)]})
    assert st == 422 and "members" in out["error"]["details"]
    assert api.get("/teams/big")[0] == 404


# ---------------------------------------------------------------- the OpenAPI document
def test_openapi_declares_every_path_parameter(crm):
    st, doc = crm.get("/openapi.json")
    assert st == 200
    for path, item in doc["paths"].items():
        declared = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        assert declared == set(__import__("re").findall(r"{(\w+)}", path)), path
    created = doc["paths"]["/apps/crm/customer"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert {"type": "array", "items": {"$ref": "#/components/schemas/crm.customer"}} in created["oneOf"]
