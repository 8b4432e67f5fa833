"""Upgrading an installed pack: the three-way merge (pure) and 1.0.0 → 1.1.0 end to end.

The merge keeps what the customer changed, takes what the new version changed, and reports the
items both changed differently (keeping the local value) instead of overwriting them.
"""
from __future__ import annotations

import copy

import pytest

from templates_library.upgrade import merge_apps

from .pack_helpers import pack_files, zip_bytes


def field(key, label, **kw):
    return {"key": key, "type": "text", "label": label, **kw}


def app(*fields, **extra):
    return {"app": "a1", "label": "A", "entities": [{"key": "e", "label": "E", "fields": list(fields)}], **extra}


def locations(items):
    return [i["location"] for i in items]


# ---------------------------------------------------------------------- the merge, pure
@pytest.mark.parametrize("local_label, new_label, merged_label, conflicts", [
    ("A", "A", "A", 0),      # nobody changed it
    ("L", "A", "L", 0),      # only the customer changed it: kept
    ("A", "N", "N", 0),      # only the new version changed it: taken
    ("X", "X", "X", 0),      # both changed it the same way
    ("L", "N", "L", 1),      # both changed it differently: local kept, conflict reported
])
def test_a_property_merges_three_ways(local_label, new_label, merged_label, conflicts):
    base = app(field("name", "A"))
    local = app(field("name", local_label, id="f1"))
    new = app(field("name", new_label))
    out = merge_apps(base, local, new)
    merged = out.doc["entities"][0]["fields"][0]
    assert merged["label"] == merged_label and merged["id"] == "f1"
    assert len(out.conflicts) == conflicts
    if conflicts:
        c = out.conflicts[0]
        assert c["location"] == "entities[e].fields[name].label"
        assert (c["base"], c["local"], c["new"]) == ("A", "L", "N")
        assert "kept the local value" in c["message"] and "保留本地" in c["message"]


def test_different_properties_of_one_field_both_survive():
    base = app({"key": "level", "type": "select", "label": "等级", "options": ["a", "b"]})
    local = app({"id": "f9", "key": "level", "type": "select", "label": "客户等级", "options": ["a", "b"]})
    new = app({"key": "level", "type": "select", "label": "等级", "options": ["a", "b", "c"], "help": "新"})
    out = merge_apps(base, local, new)
    merged = out.doc["entities"][0]["fields"][0]
    assert merged == {"id": "f9", "key": "level", "type": "select", "label": "客户等级",
                      "options": ["a", "b", "c"], "help": "新"}
    assert out.conflicts == []
    assert locations(out.created) == ["entities[e].fields[level].options[c]", "entities[e].fields[level].help"]
    assert out.changed == []


def test_fields_added_on_either_side_are_kept_in_place():
    base = app(field("a", "A"), field("b", "B"))
    local = app(field("a", "A", id="fa"), field("b", "B", id="fb"), field("mine", "Mine", id="fm"))
    new = app(field("a", "A"), field("new", "New"), field("b", "B"))
    out = merge_apps(base, local, new)
    assert [f["key"] for f in out.doc["entities"][0]["fields"]] == ["a", "new", "b", "mine"]
    assert locations(out.created) == ["entities[e].fields[new]"]


def test_removed_upstream():
    base = app(field("a", "A"), field("gone", "G"), field("edited", "E"))
    local = app(field("a", "A"), field("gone", "G"), field("edited", "E2"))
    new = app(field("a", "A"))
    out = merge_apps(base, local, new)
    keys = [f["key"] for f in out.doc["entities"][0]["fields"]]
    # untouched locally: removed; changed locally: kept, and reported
    assert keys == ["a", "edited"]
    assert locations(out.removed) == ["entities[e].fields[gone]"]
    assert locations(out.conflicts) == ["entities[e].fields[edited]"]
    assert "removed in the new version" in out.conflicts[0]["message"]


def test_removed_locally():
    base = app(field("a", "A"), field("b", "B"), field("c", "C"))
    local = app(field("a", "A"))
    new = app(field("a", "A"), field("b", "B"), field("c", "C changed"))
    out = merge_apps(base, local, new)
    assert [f["key"] for f in out.doc["entities"][0]["fields"]] == ["a"]
    assert locations(out.conflicts) == ["entities[e].fields[c]"]
    assert "removed locally" in out.conflicts[0]["message"]


def test_specs_merge_by_key_and_roles_as_a_set():
    base = app(field("a", "A"), roles=["agent", "old"],
               reports=[{"key": "r1", "entity": "e", "label": "R1"}, {"key": "r2", "entity": "e", "label": "R2"}],
               permissions=[{"role": "agent", "entity": "e", "read": "own"}])
    local = copy.deepcopy(base)
    local["roles"].append("local_role")
    local["reports"][0]["label"] = "我的报表"
    local["permissions"][0]["read"] = "team"
    new = copy.deepcopy(base)
    new["roles"] = ["agent", "supervisor"]
    new["reports"][1]["label"] = "R2 v2"
    new["reports"].append({"key": "r3", "entity": "e", "label": "R3"})
    new["permissions"].append({"role": "supervisor", "entity": "e", "read": "all"})
    out = merge_apps(base, local, new)
    assert out.doc["roles"] == ["agent", "supervisor", "local_role"]
    assert [(r["key"], r["label"]) for r in out.doc["reports"]] == [("r1", "我的报表"), ("r2", "R2 v2"), ("r3", "R3")]
    assert out.doc["permissions"] == [{"role": "agent", "entity": "e", "read": "team"},
                                      {"role": "supervisor", "entity": "e", "read": "all"}]
    assert out.conflicts == []
    assert set(locations(out.created)) == {"roles[supervisor]", "reports[r3]", "permissions[supervisor:e]"}
    assert locations(out.removed) == ["roles[old]"]
    assert locations(out.changed) == ["reports[r2].label"]


def test_an_atomic_list_changed_on_both_sides_is_one_conflict():
    flow = {"key": "f", "entity": "e", "transitions": [{"key": "t1", "from": "a", "to": "b"}]}
    base = app(field("a", "A"), flows=[flow])
    local, new = copy.deepcopy(base), copy.deepcopy(base)
    local["flows"][0]["transitions"][0]["to"] = "c"
    new["flows"][0]["transitions"].append({"key": "t2", "from": "b", "to": "a"})
    out = merge_apps(base, local, new)
    assert locations(out.conflicts) == ["flows[f].transitions"]
    assert out.doc["flows"][0]["transitions"] == local["flows"][0]["transitions"]


def test_new_entity_taken_and_store_ids_kept_when_only_upstream_changed():
    base = app(field("a", "A"))
    local = copy.deepcopy(base)
    local["entities"][0]["id"] = "e1"
    local["entities"][0]["fields"][0]["id"] = "f1"
    new = copy.deepcopy(base)
    new["entities"][0]["fields"][0]["help"] = "帮助"
    new["entities"].append({"key": "other", "label": "O", "fields": [field("x", "X")]})
    out = merge_apps(base, local, new)
    first, second = out.doc["entities"]
    assert first["id"] == "e1" and first["fields"][0] == {"id": "f1", "key": "a", "type": "text", "label": "A",
                                                          "help": "帮助"}
    assert second["key"] == "other" and "id" not in second
    assert "entities[other]" in locations(out.created)


# ---------------------------------------------------------------------- 1.0.0 -> 1.1.0 over REST
def _post_zip(api, path, data, with_data=False):
    resp = api.client.post("/api/v1" + path + ("?with_sample_data=1" if with_data else ""), data=data,
                           headers={**api._headers(), "Content-Type": "application/zip"})
    return resp.status_code, resp.get_json()


def test_upgrade_keeps_local_changes_and_reports_the_conflict(api):
    st, out = _post_zip(api, "/packs/import", zip_bytes(pack_files("1.0.0")), with_data=True)
    assert st == 201, out
    assert out["action"] == "install" and out["sample_data"] == {"customer": 2, "request": 3}

    # the customer's local changes: a field of their own (with data), two changed labels
    st, draft = api.get("/apps/helpdesk/draft")
    customer, request = draft["entities"]
    customer["fields"].append({"key": "wechat", "type": "text", "label": "微信号"})
    customer["fields"][0]["label"] = "客户姓名"          # 1.1.0 changes this label too: the conflict
    request["fields"][0]["label"] = "标题"              # 1.1.0 leaves it alone: simply kept
    assert api.put("/apps/helpdesk/draft", draft)[0] == 200
    assert api.post("/apps/helpdesk/publish", {})[0] == 200
    st, rows = api.get("/apps/helpdesk/customer?sort=id")
    first = rows["items"][0]
    assert api.patch(f"/apps/helpdesk/customer/{first['id']}", {"wechat": "huadong_jm"})[0] == 200
    assert first["fax"] == "021-5555"

    # the plan says what will happen, and writes nothing
    st, plan = _post_zip(api, "/packs/plan", zip_bytes(pack_files("1.1.0")))
    assert st == 200, plan
    assert plan["action"] == "upgrade" and plan["errors"] == []
    assert plan["installed"] == {"name": "helpdesk", "version": "1.0.0"}
    assert [(c["location"], c["local"], c["new"]) for c in plan["conflicts"]] == [
        ("entities[customer].fields[name].label", "客户姓名", "客户全称")]
    created = locations(plan["created"])
    assert {"entities[customer].fields[city]", "reports[by_customer]",
            "entities[request].fields[priority].options[urgent]"} <= set(created)
    assert {"location": "entities[customer].fields[fax]"}.items() <= next(
        c for c in plan["changed"] if c["location"] == "entities[customer].fields[fax]").items()
    assert [(r["entity"], r["field"]) for r in plan["retired"]] == [("customer", "fax")]
    assert any("city" in step for step in plan["migrations"])
    assert api.get("/apps/helpdesk/draft")[1]["entities"][0]["fields"][0]["label"] == "客户姓名"

    st, out = _post_zip(api, "/packs/import", zip_bytes(pack_files("1.1.0")), with_data=True)
    assert st == 201, out
    assert out["action"] == "upgrade" and len(out["conflicts"]) == 1 and out["sample_data"] == {}
    assert "sample_data_skipped" in out

    st, draft = api.get("/apps/helpdesk/draft")
    customer, request = draft["entities"]
    by_key = {f["key"]: f for f in customer["fields"]}
    assert list(by_key) == ["name", "level", "city", "wechat"]
    assert by_key["name"]["label"] == "客户姓名"           # the local side of the conflict
    assert request["fields"][0]["label"] == "标题"
    assert [o["value"] for o in request["fields"][2]["options"]] == ["low", "high", "urgent"]
    assert [r["key"] for r in draft["reports"]] == ["by_priority", "by_customer"]

    # the local field and its data survived; the upstream field exists; no sample data re-loaded
    st, rows = api.get("/apps/helpdesk/customer?sort=id")
    assert rows["total"] == 2
    assert rows["items"][0]["wechat"] == "huadong_jm" and rows["items"][0]["city"] is None
    assert "fax" not in rows["items"][0]
    assert api.get("/apps/helpdesk/request")[1]["total"] == 3
    st, apps = api.get("/apps")
    assert next(a for a in apps["items"] if a["app"] == "helpdesk")["pack"] == {"name": "helpdesk", "version": "1.1.0"}

    # the same version again: nothing to do and no conflict left; an older one is refused
    st, again = _post_zip(api, "/packs/plan", zip_bytes(pack_files("1.1.0")))
    assert (again["action"], again["conflicts"], again["created"], again["changed"]) == ("upgrade", [], [], [])
    st, older = _post_zip(api, "/packs/plan", zip_bytes(pack_files("1.0.0")))
    assert older["action"] == "conflict" and "older" in older["errors"][0]["message"]
    st, body = _post_zip(api, "/packs/import", zip_bytes(pack_files("1.0.0")))
    assert st == 409 and body["error"]["code"] == "conflict"


def test_an_upgrade_whose_merge_breaks_the_app_is_refused_and_changes_nothing(api):
    assert _post_zip(api, "/packs/import", zip_bytes(pack_files("1.0.0")))[0] == 201
    st, draft = api.get("/apps/helpdesk/draft")
    # the customer's own report uses fax, which 1.1.0 removes
    draft["reports"].append({"key": "by_fax", "label": "按传真", "entity": "customer", "group_by": ["fax"],
                             "measures": [{"agg": "count"}]})
    assert api.put("/apps/helpdesk/draft", draft)[0] == 200
    st, plan = _post_zip(api, "/packs/plan", zip_bytes(pack_files("1.1.0")))
    assert plan["action"] == "upgrade" and plan["errors"]
    assert all(e["location"].startswith("app (merged with local changes)") for e in plan["errors"])
    st, body = _post_zip(api, "/packs/import", zip_bytes(pack_files("1.1.0")))
    assert st == 422 and body["error"]["code"] == "validation_failed"
    assert api.get("/apps/helpdesk/draft")[1] == draft
    st, apps = api.get("/apps")
    assert next(a for a in apps["items"] if a["app"] == "helpdesk")["pack"]["version"] == "1.0.0"
