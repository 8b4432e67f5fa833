"""Links and owners must point at something the writer may see: an unreadable record is refused
as if it did not exist, and an owner must be an existing user."""
from __future__ import annotations

APP = {
    "app": "links",
    "label": "links",
    "roles": ["agent"],
    "entities": [
        {"key": "customer", "label": "客户", "title_field": "name",
         "fields": [{"key": "name", "type": "text", "label": "名称"}]},
        {"key": "ticket", "label": "工单", "fields": [
            {"key": "subject", "type": "text", "label": "主题"},
            {"key": "customer", "type": "lookup", "label": "客户", "target": "customer"}]},
    ],
    "permissions": [
        {"role": "agent", "entity": "customer", "create": True, "read": "own", "update": "own"},
        {"role": "agent", "entity": "ticket", "create": True, "read": "own", "update": "own"},
    ],
}


def test_a_link_to_an_unreadable_record_is_refused_like_a_missing_one(api, make_app, login_as):
    make_app(APP)
    alice = login_as("alice", app_roles={"links": ["agent"]})
    bob = login_as("bob", app_roles={"links": ["agent"]})
    st, mine = alice.post("/apps/links/customer", {"name": "甲"})
    assert st == 201
    st, body = bob.post("/apps/links/ticket", {"subject": "x", "customer": mine["id"]})
    assert st == 422 and "customer" in body["error"]["details"]
    st, missing = bob.post("/apps/links/ticket", {"subject": "x", "customer": 999999})
    assert st == 422 and missing["error"]["details"]["customer"][0].startswith("no customer record")
    assert body["error"]["details"]["customer"][0].startswith("no customer record")   # the same answer
    st, ok = alice.post("/apps/links/ticket", {"subject": "x", "customer": mine["id"]})
    assert st == 201 and ok["customer"] == mine["id"]


def test_owner_must_be_an_existing_user(api, make_app):
    make_app(APP)
    st, body = api.post("/apps/links/customer", {"name": "乙", "owner": 987654})
    assert st == 422 and "owner" in body["error"]["details"]
