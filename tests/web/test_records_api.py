"""End to end over HTTP: build an app, publish, run records, migrate the schema, on both back ends."""
from __future__ import annotations

import copy

CUSTOMER_FIELDS = [
    {"key": "name", "type": "text", "label": "名称", "required": True, "max_length": 100},
    {"key": "notes", "type": "textarea", "label": "备注"},
    {"key": "employees", "type": "number", "label": "员工数", "min": 0},
    {"key": "revenue", "type": "currency", "label": "年收入"},
    {"key": "discount", "type": "percent", "label": "折扣"},
    {"key": "vip", "type": "boolean", "label": "VIP"},
    {"key": "since", "type": "date", "label": "签约日期"},
    {"key": "last_contact", "type": "datetime", "label": "最近联系"},
    {"key": "industry", "type": "select", "label": "行业",
     "options": [{"value": "manufacturing", "label": "制造业"}, {"value": "retail", "label": "零售"}],
     "default": "retail"},
    {"key": "tags", "type": "multiselect", "label": "标签", "options": ["key_account", "new", "渠道"]},
    {"key": "email", "type": "email", "label": "邮箱", "unique": True},
    {"key": "phone", "type": "phone", "label": "电话"},
    {"key": "website", "type": "url", "label": "网站"},
    {"key": "rating", "type": "rating", "label": "评级"},
    {"key": "code", "type": "autonumber", "label": "编号", "format": "C-{YYYY}-{0000}"},
    {"key": "contacts", "type": "subtable", "label": "联系人", "fields": [
        {"key": "person", "type": "text", "label": "姓名", "required": True},
        {"key": "title", "type": "text", "label": "职务"},
    ]},
]

APP = {
    "app": "crm",
    "label": "客户管理",
    "entities": [
        {"key": "customer", "label": "客户", "title_field": "name", "fields": CUSTOMER_FIELDS},
        {"key": "ticket", "label": "工单", "title_field": "subject", "fields": [
            {"key": "subject", "type": "text", "label": "主题", "required": True},
            {"key": "customer", "type": "lookup", "label": "客户", "target": "customer"},
            {"key": "amount", "type": "currency", "label": "金额", "min": 0},
        ]},
    ],
    "forms": [{"key": "intake", "entity": "ticket", "layout": [{"section": "基本信息", "columns": 2,
                                                                "fields": ["subject", "customer"]}]}],
}


def full_customer():
    return {"name": "华东精密机械有限公司", "notes": "老客户\n多行", "employees": 250, "revenue": "1250000.5",
            "discount": 12.5, "vip": True, "since": "2026-01-31", "last_contact": "2026-03-01T09:30:00+08:00",
            "industry": "manufacturing", "tags": ["key_account", "渠道"], "email": "info@huadong.example.cn",
            "phone": "+86 (21) 5555-0101", "website": "https://huadong.example.cn", "rating": 4,
            "contacts": [{"person": "王伟", "title": "采购经理"}, {"person": "李娜"}]}


def test_app_lifecycle_keeps_data(api, make_app):
    plan = make_app(copy.deepcopy(APP))
    assert plan["revision"] == 1
    assert plan["summary"]["tables_created"] >= 3  # two entities and the subtable

    st, cust = api.post("/apps/crm/customer", full_customer())
    assert st == 201, cust
    assert cust["revenue"] == "1250000.50"
    assert cust["discount"] == "12.50"
    assert cust["last_contact"] == "2026-03-01T09:30:00+08:00"
    assert cust["since"] == "2026-01-31"
    assert cust["tags"] == ["key_account", "渠道"]
    assert cust["code"].startswith("C-") and cust["code"].endswith("-0001")
    assert [c["person"] for c in cust["contacts"]] == ["王伟", "李娜"]
    assert cust["_version"] == 1 and cust["owner"] is not None

    st, second = api.post("/apps/crm/customer", {"name": "北辰零售"})
    assert st == 201 and second["industry"] == "retail" and second["code"].endswith("-0002")

    st, ticket = api.post("/apps/crm/ticket", {"subject": "无法登录", "customer": cust["id"], "amount": 10})
    assert st == 201 and ticket["customer"] == cust["id"] and ticket["amount"] == "10.00"

    st, up = api.patch(f"/apps/crm/customer/{cust['id']}", {"employees": 300}, headers={"If-Match": "1"})
    assert st == 200 and up["employees"] == 300 and up["_version"] == 2
    st, body = api.patch(f"/apps/crm/customer/{cust['id']}", {"employees": 1}, headers={"If-Match": "1"})
    assert st == 409 and body["error"]["code"] == "conflict"

    st, page = api.get("/apps/crm/customer?filter=" + "employees > 100" + "&sort=-created_at&page_size=10")
    assert st == 200 and page["total"] == 1 and page["items"][0]["name"] == "华东精密机械有限公司"

    # add a field, rename one, retire one; republish: data stays at every step
    st, draft = api.get("/apps/crm/draft")
    fields = draft["entities"][0]["fields"]
    fields.append({"key": "region", "type": "select", "label": "区域", "options": ["east", "north"]})
    next(f for f in fields if f["key"] == "employees")["key"] = "headcount"
    draft["entities"][0]["fields"] = [f for f in fields if f["key"] != "website"]
    st, body = api.put("/apps/crm/draft", draft)
    assert st == 200, body
    st, plan = api.post("/apps/crm/publish", {})
    assert st == 200, plan
    assert plan["summary"]["columns_added"] == 1
    assert plan["summary"]["columns_renamed"] == 1
    assert plan["summary"]["columns_retired"] == 1
    assert any("headcount" in s for s in plan["steps"])

    st, again = api.get(f"/apps/crm/customer/{cust['id']}")
    assert st == 200
    assert again["headcount"] == 300 and "employees" not in again
    assert "website" not in again and again["region"] is None
    assert again["name"] == "华东精密机械有限公司" and again["revenue"] == "1250000.50"

    # restore the retired field: its data comes back
    draft["entities"][0]["fields"].append(next(f for f in fields if f["key"] == "website"))
    st, _ = api.put("/apps/crm/draft", draft)
    st, plan = api.post("/apps/crm/publish", {})
    assert st == 200 and plan["summary"]["columns_restored"] == 1
    st, again = api.get(f"/apps/crm/customer/{cust['id']}")
    assert again["website"] == "https://huadong.example.cn"

    st, revs = api.get("/apps/crm/revisions")
    assert [r["number"] for r in revs["items"]] == [3, 2, 1]
    st, diff = api.get("/apps/crm/revisions/2/diff")
    changed = diff["diff"]["entities"]["changed"][0]["fields"]
    assert changed["renamed"][0]["to"] == "headcount" and changed["retired"][0]["key"] == "website"

    # restore revision 1 as revision 4: employees is back under its old name with its data
    st, res = api.post("/apps/crm/revisions/1/restore", {})
    assert st == 200 and res["revision"] == 4
    st, again = api.get(f"/apps/crm/customer/{cust['id']}")
    assert again["employees"] == 300 and "region" not in again

    st, _ = api.delete(f"/apps/crm/customer/{cust['id']}")
    assert st == 409  # a ticket links to it
    st, _ = api.delete(f"/apps/crm/ticket/{ticket['id']}")
    assert st == 204
    st, _ = api.delete(f"/apps/crm/customer/{cust['id']}")
    assert st == 204
    st, _ = api.get(f"/apps/crm/customer/{cust['id']}")
    assert st == 404

    st, tl = api.get(f"/apps/crm/customer/{second['id']}/timeline")
    assert st == 200 and tl["items"][0]["kind"] == "create"


def test_bulk_create_is_all_or_nothing(api, make_app):
    make_app(copy.deepcopy(APP))
    st, body = api.post("/apps/crm/customer", [{"name": "甲"}, {"name": "乙", "email": "bad"}, {"name": ""}])
    assert st == 422
    assert "[1].email" in body["error"]["details"] and "[2].name" in body["error"]["details"]
    st, page = api.get("/apps/crm/customer")
    assert page["total"] == 0
    st, created = api.post("/apps/crm/customer", [{"name": f"客户{i}"} for i in range(20)])
    assert st == 201 and len(created) == 20
    assert len({c["code"] for c in created}) == 20


def test_keyset_paging_walks_every_record_once(api, make_app):
    make_app(copy.deepcopy(APP))
    api.post("/apps/crm/customer", [{"name": f"c{i:02}", "employees": i % 3} for i in range(25)])
    seen, cursor = [], None
    while True:
        q = "/apps/crm/customer?sort=employees&page_size=7" + (f"&cursor={cursor}" if cursor else "")
        st, page = api.get(q)
        assert st == 200
        seen += [r["name"] for r in page["items"]]
        cursor = page.get("next")
        if not cursor:
            break
    assert sorted(seen) == sorted(f"c{i:02}" for i in range(25))
