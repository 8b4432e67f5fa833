"""The action executor as flows use it: every action kind, the order of exit/transition/enter
actions, chained transitions, traces on the timeline, and a failing action rolling back the write."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from engines.errors import JimuError
from runtime import system_tables as st
from runtime import timers
from runtime.flows_runtime import FlowService
from tests.runtime.flow_support import install, person, run, sh, timeline

OPS = {
    "app": "ops", "label": "运维", "timezone": "Asia/Shanghai", "roles": ["agent", "lead"],
    "entities": [
        {"key": "job", "label": "工单", "title_field": "title", "fields": [
            {"key": "title", "type": "text", "label": "标题", "required": True},
            {"key": "state", "type": "select", "label": "状态", "options": ["open", "doing", "review", "done"]},
            {"key": "priority", "type": "select", "label": "优先级", "options": ["P1", "P2", "P3"], "default": "P3"},
            {"key": "reviewer", "type": "user", "label": "审核人"},
            {"key": "contact", "type": "email", "label": "联系邮箱"},
            {"key": "steps", "type": "text", "label": "步骤"},
        ]},
        {"key": "followup", "label": "跟进", "title_field": "title", "fields": [
            {"key": "title", "type": "text", "label": "标题", "required": True},
            {"key": "job", "type": "lookup", "label": "工单", "target": "job"},
            {"key": "due", "type": "datetime", "label": "截止"},
        ]},
    ],
    "flows": [{
        "key": "jobs", "entity": "job", "state_field": "state", "initial": "open",
        "states": [
            {"key": "open", "label": "待处理", "on_exit": [{"set": {"steps": "'exit open'"}}]},
            {"key": "doing", "label": "处理中", "on_enter": [
                {"set": {"steps": "steps + ' > enter doing'"}},
                {"notify": {"to": ["owner", "role:lead", "reviewer", "user:zhou", "contact"],
                            "message": "{title} 开始处理 ({priority})"}}]},
            {"key": "review", "label": "审核", "on_enter": [{"transition": "finish"}]},
            {"key": "done", "label": "完成", "final": True},
        ],
        "transitions": [
            {"key": "start", "from": "open", "to": "doing", "actions": [
                {"set": {"steps": "steps + ' > start'", "priority": "'P1'"}},
                {"add_tag": "hot"}, {"add_tag": ["vip", "cold"]}, {"remove_tag": "cold"},
                {"assign": {"to": "user:zhou", "field": "reviewer"}},
                {"create": {"entity": "followup", "values": {"title": "'回访 ' + title", "job": "id",
                                                             "due": "NOW() + HOURS(2)"}}},
                {"email": {"to": "contact", "subject": "{title} 已受理", "body": "优先级 {priority}"}},
                {"task": {"title": "复核 {title}", "to": "field:reviewer", "due": {"hours": 4}}},
            ]},
            {"key": "submit", "from": "doing", "to": "review"},
            {"key": "finish", "from": "review", "to": "done"},
            {"key": "bad_create", "from": "open", "to": "doing",
             "actions": [{"create": {"entity": "followup", "values": {"title": "''"}}}]},
            {"key": "bad_set", "from": "open", "to": "doing", "actions": [{"set": {"priority": "'P9'"}}]},
            {"key": "bad_notify", "from": "open", "to": "doing", "actions": [{"notify": {"to": ["boss:x"]}}]},
        ],
    }],
}


@pytest.fixture
def ops(services):
    install(services, json.loads(json.dumps(OPS)))
    lead = person(services, "lead1", ["lead"], app="ops")
    zhou = person(services, "zhou", ["agent"], app="ops")
    ma = person(services, "ma", ["agent"], app="ops")
    return services, ma, zhou, lead


def test_every_action_kind_runs_in_order_and_leaves_a_trace(ops):
    svc, ma, zhou, lead = ops
    flows = FlowService(svc.records)
    now = sh(2026, 3, 2, 10)
    job = run(svc, ma, now, lambda c: svc.records.create(c, "ops", "job", {"title": "机房断电",
                                                                          "contact": "it@example.cn"}))
    out = run(svc, ma, now, lambda c: flows.transition(c, "ops", "job", job["id"], "start"))
    assert out["state"] == "doing" and out["priority"] == "P1" and out["reviewer"] == zhou.id
    assert out["steps"] == "exit open > start > enter doing"          # exit, transition, enter
    assert out["_tags"] == ["hot", "vip"]
    with svc.engine.connect() as conn:
        followups = conn.execute(sa.text("select 1")).all()
        capp = svc.catalog.get(conn, "ops")
        ft = capp.tables["followup"]
        fu = conn.execute(sa.select(ft)).mappings().all()
        box = conn.execute(sa.select(st.outbox).order_by(st.outbox.c.id)).mappings().all()
        tasks = conn.execute(sa.select(st.tasks)).mappings().all()
    assert followups and len(fu) == 1 and fu[0]["title"] == "回访 机房断电" and fu[0]["job"] == job["id"]
    assert fu[0]["owner"] == ma.id and fu[0]["due"].isoformat().startswith("2026-03-02T04:00")
    email = next(json.loads(b["payload"]) for b in box if b["channel"] == "email")
    assert email == {"to": ["it@example.cn"], "subject": "机房断电 已受理", "body": "优先级 P1"}
    told = [json.loads(b["payload"]) for b in box if b["channel"] == "email"][1]   # the customer is no user
    assert told["to"] == ["it@example.cn"] and told["body"] == "机房断电 开始处理 (P1)"
    notify = next(json.loads(b["payload"]) for b in box if b["channel"] == "notify")
    assert sorted(notify["user_ids"]) == sorted({ma.id, lead.id, zhou.id})
    assert notify["message"] == "机房断电 开始处理 (P1)"
    assert [(t["kind"], t["assignee_id"], t["title"]) for t in tasks] == [("task", zhou.id, "复核 机房断电")]
    entry = next(i for i in timeline(svc, "ops", "job", job["id"]) if i["kind"] == "transition")
    actions = [t["action"] for t in entry["details"]["trace"] if "action" in t]
    assert actions == ["set", "set", "add_tag", "add_tag", "remove_tag", "assign", "set",
                       "create", "email", "task", "notify"]


def test_chained_transition_from_on_enter(ops):
    svc, ma, zhou, lead = ops
    flows = FlowService(svc.records)
    now = sh(2026, 3, 2, 10)
    job = run(svc, ma, now, lambda c: svc.records.create(c, "ops", "job", {"title": "换硬盘"}))
    run(svc, ma, now, lambda c: flows.transition(c, "ops", "job", job["id"], "start"))
    out = run(svc, ma, now, lambda c: flows.transition(c, "ops", "job", job["id"], "submit"))
    assert out["state"] == "done" and out["_flow"]["state"] == "done"
    moves = [i["summary"] for i in timeline(svc, "ops", "job", job["id"]) if i["kind"] == "transition"]
    assert moves == ["open → doing", "doing → review", "review → done"]


@pytest.mark.parametrize("transition,fragment", [
    ("bad_create", "title"),          # the created record fails its own validation
    ("bad_set", "priority"),          # a value that is not an option
    ("bad_notify", "boss:x"),         # an unknown recipient
])
def test_a_failing_action_rolls_back_the_whole_write(ops, transition, fragment):
    svc, ma, zhou, lead = ops
    flows = FlowService(svc.records)
    now = sh(2026, 3, 2, 10)
    job = run(svc, ma, now, lambda c: svc.records.create(c, "ops", "job", {"title": "漏水"}))
    with pytest.raises(JimuError) as exc:
        run(svc, ma, now, lambda c: flows.transition(c, "ops", "job", job["id"], transition))
    assert exc.value.code == "action_failed" and exc.value.status == 422
    assert fragment in json.dumps(exc.value.details, ensure_ascii=False) + exc.value.message
    again = run(svc, ma, now, lambda c: svc.records.get(c, "ops", "job", job["id"]))
    assert again["state"] == "open" and again["_version"] == job["_version"] and again["_flow"]["state"] == "open"
    with svc.engine.connect() as conn:
        capp = svc.catalog.get(conn, "ops")
        assert conn.execute(sa.select(sa.func.count()).select_from(capp.tables["followup"])).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(st.outbox)).scalar() == 0
    assert [i["kind"] for i in timeline(svc, "ops", "job", job["id"])] == ["create"]


def test_an_automation_may_move_a_record_on_at_create(services):
    from tests.runtime.flow_support import complaints_doc
    doc = complaints_doc()
    doc["rules"].append({"key": "hot_line", "kind": "automation", "entity": "ticket", "on": ["create"],
                         "condition": "urgency == 'high'", "actions": [{"transition": "accept"}]})
    install(services, doc)
    li = person(services, "li", ["agent"], teams=["service"])
    svc, now = services, sh(2026, 3, 2, 10)
    hot = run(svc, li, now, lambda c: svc.records.create(c, "complaints", "ticket", {"subject": "热线", "urgency": "high"}))
    cold = run(svc, li, now, lambda c: svc.records.create(c, "complaints", "ticket", {"subject": "普通"}))
    hot = run(svc, li, now, lambda c: svc.records.get(c, "complaints", "ticket", hot["id"]))
    assert hot["status"] == "in_progress" and hot["_flow"]["state"] == "in_progress" and cold["status"] == "new"
    assert {s["key"]: s["status"] for s in hot["_sla"]} == {"first_response": "met", "resolution": "running"}
    assert hot["responded_at"] == "2026-03-02T10:00:00+08:00"
    moves = [i["summary"] for i in timeline(svc, "complaints", "ticket", hot["id"]) if i["kind"] == "transition"]
    assert moves == ["new → in_progress"]
    with svc.engine.connect() as conn:
        kinds = sorted(t["payload"]["sla"] + ":" + t["kind"] for t in
                       timers.pending_for(conn, app="complaints", entity="ticket", record_id=hot["id"]))
    assert kinds == ["resolution:sla_breach"]
