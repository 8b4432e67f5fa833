"""Rules in the record pipeline, over the REST API on both back ends: scoring, routing, validation,
compute, automations (field actions), roll-ups, traces and simulation."""
from __future__ import annotations

import copy

import pytest

LEADS = {
    "app": "leads",
    "label": "线索",
    "roles": ["sales"],
    "entities": [
        {"key": "lead", "label": "线索", "title_field": "name", "fields": [
            {"key": "name", "type": "text", "label": "名称", "required": True},
            {"key": "source", "type": "select", "label": "来源", "options": ["website", "expo", "referral"]},
            {"key": "industry", "type": "select", "label": "行业", "options": ["manufacturing", "retail", "it"]},
            {"key": "region", "type": "select", "label": "区域", "options": ["east", "north", "south"]},
            {"key": "visits", "type": "number", "label": "访问次数"},
            {"key": "budget", "type": "currency", "label": "预算"},
            {"key": "budget_wan", "type": "number", "label": "预算(万)"},
            {"key": "score", "type": "number", "label": "评分"},
            {"key": "grade", "type": "select", "label": "等级", "options": ["hot", "warm", "cold"]},
            {"key": "priority", "type": "text", "label": "优先级"},
            {"key": "phone", "type": "phone", "label": "电话"},
        ]},
    ],
    "rules": [
        {"key": "budget_wan", "kind": "compute", "entity": "lead", "target": "budget_wan", "expression": "budget / 10000"},
        {"key": "phone_for_expo", "kind": "validate", "entity": "lead",
         "condition": "source != 'expo' or not ISBLANK(phone)", "message": "展会线索必须填写电话", "field": "phone"},
        {"key": "lead_score", "kind": "score", "entity": "lead", "target": "score", "components": [
            {"condition": "source == 'website'", "points": 20},
            {"condition": "industry in ['manufacturing', 'retail']", "points": 30},
            {"expression": "MIN(COALESCE(visits, 0), 10) * 3"}],
         "grades": {"field": "grade", "bands": [{"min": 80, "value": "hot"}, {"min": 50, "value": "warm"},
                                                {"min": 0, "value": "cold"}]}},
        {"key": "route_leads", "kind": "assign", "entity": "lead", "target": "owner", "on": ["create"],
         "routes": [{"condition": "region == 'east'", "to": "team:shanghai", "strategy": "round_robin"},
                    {"condition": "industry == 'manufacturing'", "to": "user:alice"}],
         "fallback": {"to": "team:sales", "strategy": "least_loaded"}},
        {"key": "hot_priority", "kind": "automation", "entity": "lead", "on": ["create", "update"],
         "condition": "changed(grade) and grade == 'hot'", "actions": [{"set": {"priority": "'P1'"}}]},
    ],
}


@pytest.fixture
def leads(api, make_app, flask_app):
    from tests.conftest import make_user
    for name in ("alice", "bob", "carol", "dave", "erin", "sam1", "sam2"):
        make_user(flask_app, name)
    st, _ = api.post("/teams", {"key": "shanghai", "label": "上海团队", "members": ["bob", "carol", "dave", "erin"]})
    assert st == 201
    st, _ = api.post("/teams", {"key": "sales", "label": "销售", "members": ["sam1", "sam2"]})
    assert st == 201
    make_app(copy.deepcopy(LEADS))
    return api


def user_id(api, name):
    st, body = api.get("/users")
    return next(u["id"] for u in body["items"] if u["name"] == name)


def test_hot_website_lead_from_the_east_goes_round_robin_to_shanghai(leads):
    st, lead = leads.post("/apps/leads/lead", {"name": "华东精密", "source": "website", "industry": "manufacturing",
                                               "region": "east", "visits": 12, "budget": "250000"})
    assert st == 201, lead
    assert lead["score"] == 20 + 30 + 30
    assert lead["grade"] == "hot"
    assert lead["priority"] == "P1"
    assert lead["budget_wan"] == 25
    shanghai = {user_id(leads, n) for n in ("bob", "carol", "dave", "erin")}
    assert lead["owner"] in shanghai


def test_round_robin_spreads_100_leads_evenly(leads):
    bodies = [{"name": f"线索{i}", "region": "east"} for i in range(100)]
    st, created = leads.post("/apps/leads/lead", bodies)
    assert st == 201
    counts = {}
    for lead in created:
        counts[lead["owner"]] = counts.get(lead["owner"], 0) + 1
    assert sorted(counts.values()) == [25, 25, 25, 25]


def test_least_loaded_picks_the_person_with_fewest_open_leads(leads):
    sam1, sam2 = user_id(leads, "sam1"), user_id(leads, "sam2")
    # give sam1 three leads by hand (admins may set the owner)
    for i in range(3):
        st, _ = leads.post("/apps/leads/lead", {"name": f"手工{i}", "owner": sam1, "region": "north"})
        assert st == 201
    st, lead = leads.post("/apps/leads/lead", {"name": "新线索", "region": "north", "industry": "it"})
    assert lead["owner"] == sam2
    st, tl = leads.get(f"/apps/leads/lead/{lead['id']}/timeline")
    trace = tl["items"][-1]["details"]["trace"]
    assign = next(t for t in trace if t["kind"] == "assign")
    assert assign["matched"] == "fallback"
    assert assign["assignment"]["loads"] == {"sam1": 3, "sam2": 0}


def test_the_trace_says_why_a_lead_missed_the_shanghai_team(leads):
    st, lead = leads.post("/apps/leads/lead", {"name": "北方零售", "region": "north", "industry": "retail"})
    st, tl = leads.get(f"/apps/leads/lead/{lead['id']}/timeline")
    trace = next(i for i in tl["items"] if i["kind"] == "create")["details"]["trace"]
    assign = next(t for t in trace if t["kind"] == "assign")
    first, second = assign["routes"]
    assert first["result"] is False and first["inputs"] == {"region": "north"}
    assert second["result"] is False and second["inputs"] == {"industry": "retail"}
    score = next(t for t in trace if t["kind"] == "score")
    assert [c["points"] for c in score["breakdown"]] == [0, 30, 0]


def test_validation_rule_message_lands_on_its_field(leads):
    st, body = leads.post("/apps/leads/lead", {"name": "展会", "source": "expo"})
    assert st == 422
    assert body["error"]["details"]["phone"] == ["展会线索必须填写电话"]
    st, _ = leads.post("/apps/leads/lead", {"name": "展会", "source": "expo", "phone": "138-0000-1234"})
    assert st == 201


def test_automation_fires_only_when_grade_changes(leads):
    st, lead = leads.post("/apps/leads/lead", {"name": "冷线索", "industry": "it", "region": "south"})
    assert lead["grade"] == "cold" and lead["priority"] is None
    st, lead = leads.patch(f"/apps/leads/lead/{lead['id']}", {"priority": "P3"})
    assert lead["priority"] == "P3"
    st, lead = leads.patch(f"/apps/leads/lead/{lead['id']}", {"source": "website", "industry": "retail", "visits": 20})
    assert lead["grade"] == "hot" and lead["priority"] == "P1"


def test_simulate_writes_nothing_and_explains(leads):
    st, before = leads.get("/apps/leads/lead")
    st, sim = leads.post("/apps/leads/simulate", {"entity": "lead", "record": {
        "name": "模拟", "source": "website", "industry": "manufacturing", "region": "east", "visits": 3}})
    assert st == 200, sim
    assert sim["record"]["score"] == 59 and sim["record"]["grade"] == "warm"
    assert sim["valid"] is True
    assert sim["assignments"][0]["matched"] == 0
    assert sim["assignments"][0]["assignment"]["chosen"] in ("bob", "carol", "dave", "erin")
    st, after = leads.get("/apps/leads/lead")
    assert after["total"] == before["total"]
    # the round-robin counter did not move: two simulations choose the same person
    st, sim2 = leads.post("/apps/leads/simulate", {"entity": "lead", "record": {"name": "x", "region": "east"}})
    assert sim2["assignments"][0]["assignment"]["chosen"] == sim["assignments"][0]["assignment"]["chosen"]
    st, bad = leads.post("/apps/leads/simulate", {"entity": "lead", "record": {"name": "x", "source": "expo"}})
    assert st == 200 and bad["valid"] is False and "phone" in bad["errors"]


ROLLUP = {
    "app": "shop",
    "label": "商城",
    "entities": [
        {"key": "customer", "label": "客户", "title_field": "name", "fields": [
            {"key": "name", "type": "text", "label": "名称"},
            {"key": "order_total", "type": "rollup", "label": "订单总额",
             "rollup": {"entity": "sales_order", "via": "customer", "agg": "sum", "field": "total"}},
            {"key": "open_tickets", "type": "rollup", "label": "未结工单",
             "rollup": {"entity": "ticket", "via": "customer", "agg": "count", "filter": "status != 'closed'"}},
        ]},
        {"key": "sales_order", "label": "订单", "fields": [
            {"key": "customer", "type": "lookup", "label": "客户", "target": "customer"},
            {"key": "total", "type": "currency", "label": "金额"},
        ]},
        {"key": "ticket", "label": "工单", "fields": [
            {"key": "customer", "type": "lookup", "label": "客户", "target": "customer"},
            {"key": "status", "type": "select", "label": "状态", "options": ["open", "closed"], "default": "open"},
        ]},
    ],
}


def test_rollups_stay_correct_through_create_update_delete(api, make_app):
    make_app(copy.deepcopy(ROLLUP))
    _, a = api.post("/apps/shop/customer", {"name": "甲"})
    _, b = api.post("/apps/shop/customer", {"name": "乙"})
    _, o1 = api.post("/apps/shop/sales_order", {"customer": a["id"], "total": "100.50"})
    _, o2 = api.post("/apps/shop/sales_order", {"customer": a["id"], "total": "200"})
    _, t1 = api.post("/apps/shop/ticket", {"customer": a["id"]})
    _, t2 = api.post("/apps/shop/ticket", {"customer": a["id"]})

    def get(c):
        return api.get(f"/apps/shop/customer/{c['id']}")[1]

    assert get(a)["order_total"] == 300.5 and get(a)["open_tickets"] == 2
    api.patch(f"/apps/shop/sales_order/{o2['id']}", {"customer": b["id"]})       # moved to another customer
    assert get(a)["order_total"] == 100.5 and get(b)["order_total"] == 200
    api.patch(f"/apps/shop/ticket/{t1['id']}", {"status": "closed"})
    assert get(a)["open_tickets"] == 1
    api.delete(f"/apps/shop/sales_order/{o1['id']}")
    api.delete(f"/apps/shop/ticket/{t2['id']}")
    assert get(a)["order_total"] == 0 and get(a)["open_tickets"] == 0


def _with_rule(rule):
    doc = copy.deepcopy(LEADS)
    doc["app"] = "leads2"
    doc["rules"] = [rule]
    return doc


# Each case: a broken rule and the location its save-time error names.
BAD_RULES = [
    ({"key": "r", "kind": "magic", "entity": "lead"}, "rules[0].kind"),                       # unknown kind
    ({"key": "r", "kind": "compute", "entity": "nope", "target": "x", "expression": "1"}, "rules[0].entity"),
    ({"key": "r", "kind": "compute", "entity": "lead", "target": "nope", "expression": "1"}, "rules[0].target"),
    ({"key": "r", "kind": "compute", "entity": "lead", "target": "score", "expression": "vists * 2"},
     "rules[0].expression"),                                                                   # unknown field
    ({"key": "r", "kind": "validate", "entity": "lead", "condition": "score + 1"}, "rules[0].condition"),  # not bool
    ({"key": "r", "kind": "validate", "entity": "lead", "condition": "name == 'a' and"}, "rules[0].condition"),
    ({"key": "r", "kind": "score", "entity": "lead", "target": "score", "components": []}, "rules[0].components"),
    ({"key": "r", "kind": "score", "entity": "lead", "target": "score",
      "components": [{"condition": "'a' + 1 == 2", "points": 1}]}, "rules[0].components[0].condition"),
    ({"key": "r", "kind": "score", "entity": "lead", "target": "score", "components": [{"expression": "visits"}],
      "grades": {"field": "grade", "bands": [{"min": 1, "value": "boiling"}]}}, "rules[0].grades.bands[0].value"),
    ({"key": "r", "kind": "assign", "entity": "lead", "routes": [{"to": "galaxy:far"}]}, "rules[0].routes[0].to"),
    ({"key": "r", "kind": "assign", "entity": "lead", "routes": [{"to": "team:x", "strategy": "random"}]},
     "rules[0].routes[0].strategy"),
    ({"key": "r", "kind": "automation", "entity": "lead", "actions": [{"set": {"priority": "'P1'"}}]}, "rules[0].on"),
    ({"key": "r", "kind": "automation", "entity": "lead", "on": ["create"], "actions": [{"explode": 1}]},
     "rules[0].actions[0]"),
    ({"key": "r", "kind": "automation", "entity": "lead", "on": ["created"], "actions": [{"add_tag": "x"}]},
     "rules[0].on[0]"),
    ({"key": "r", "kind": "automation", "entity": "lead", "on": ["create"], "condition": "prev(nope) == 1",
      "actions": [{"add_tag": "x"}]}, "rules[0].condition"),
    ({"key": "r", "kind": "automation", "entity": "lead", "on": ["create"],
      "actions": [{"webhook": {"url": "ftp://x"}}]}, "rules[0].actions[0].webhook.url"),
]


@pytest.mark.parametrize("rule,location", BAD_RULES)
def test_rule_mistakes_are_refused_at_save_time(api, rule, location):
    st, body = api.post("/apps", _with_rule(rule))
    assert st == 422, body
    assert location in [d["location"] for d in body["error"]["details"]], body["error"]["details"]


def test_rules_that_trigger_each_other_in_a_loop_are_refused(api):
    doc = copy.deepcopy(LEADS)
    doc["app"] = "loop"
    doc["rules"] = [
        {"key": "a", "kind": "compute", "entity": "lead", "target": "visits", "expression": "score + 1"},
        {"key": "b", "kind": "compute", "entity": "lead", "target": "score", "expression": "visits + 1"},
    ]
    st, body = api.post("/apps", doc)
    assert st == 422
    assert any("loop" in d["message"] and "a" in d["message"] for d in body["error"]["details"])


def test_formula_cycles_are_refused_with_the_path(api):
    doc = copy.deepcopy(LEADS)
    doc["app"] = "cyc"
    doc["rules"] = []
    doc["entities"][0]["fields"] += [
        {"key": "f1", "type": "formula", "label": "f1", "expression": "f2 + 1"},
        {"key": "f2", "type": "formula", "label": "f2", "expression": "f1 + 1"},
    ]
    st, body = api.post("/apps", doc)
    assert st == 422
    assert any("f1 → f2 → f1" in d["message"] or "f2 → f1 → f2" in d["message"] for d in body["error"]["details"])
