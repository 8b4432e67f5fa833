"""Scheduled automations: N days before a date field (re-planned when it changes), yearly dates,
and a cron job over the records matching a condition (dormant > 90 days → wake-up task)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from runtime import outbox, timers
from runtime.scheduled_rules import CRON_KIND, DATE_KIND
from runtime.scheduler import Scheduler
from tests.runtime.flow_support import install, person, run, sh, timeline

C360 = {
    "app": "c360", "label": "客户360", "timezone": "Asia/Shanghai", "roles": ["am"],
    "entities": [
        {"key": "customer", "label": "客户", "title_field": "name", "fields": [
            {"key": "name", "type": "text", "label": "名称", "required": True},
            {"key": "contract_end", "type": "date", "label": "合同到期"},
            {"key": "birthday", "type": "date", "label": "生日"},
            {"key": "last_purchase", "type": "date", "label": "最近购买"},
            {"key": "lifecycle", "type": "select", "label": "生命周期", "options": ["active", "dormant"],
             "default": "active"},
        ]},
        {"key": "wakeup", "label": "唤醒任务", "title_field": "title", "fields": [
            {"key": "title", "type": "text", "label": "标题", "required": True},
            {"key": "customer", "type": "lookup", "label": "客户", "target": "customer"},
        ]},
    ],
    "rules": [
        {"key": "contract_reminder", "kind": "automation", "entity": "customer", "on": ["schedule"],
         "schedule": {"field": "contract_end", "offset": {"days": -30}},
         "actions": [{"notify": {"to": ["owner"], "message": "合同将于 {contract_end} 到期：{name}"}},
                     {"add_tag": "renewal"}]},
        {"key": "birthday", "kind": "automation", "entity": "customer", "on": ["schedule"],
         "schedule": {"field": "birthday", "offset": {"days": 0}, "yearly": True},
         "actions": [{"notify": {"to": ["owner"], "message": "今天是 {name} 的生日"}}]},
        {"key": "dormant", "kind": "automation", "entity": "customer", "on": ["schedule"],
         "schedule": {"cron": "0 2 * * *"},
         "condition": "DAYS_BETWEEN(last_purchase, TODAY()) > 90 and lifecycle != 'dormant'",
         "actions": [{"set": {"lifecycle": "'dormant'"}},
                     {"create": {"entity": "wakeup", "values": {"title": "'唤醒 ' + name", "customer": "id"}}}]},
    ],
}


@pytest.fixture
def world(services):
    install(services, C360, now=sh(2026, 3, 1, 9))
    am = person(services, "am", ["am"], app="c360")
    return services, am


def _pending(svc, rid=None, kind=DATE_KIND):
    with svc.engine.connect() as conn:
        return [(t["payload"]["rule"], t["due_at"]) for t in
                timers.pending_for(conn, app="c360", entity="customer", record_id=rid, kinds=[kind])]


def test_date_and_cron_automations(world):
    svc, am = world
    sched = Scheduler(svc.engine, svc.catalog, svc.records, worker_id="w")
    t0 = sh(2026, 3, 2, 9, 0)
    a = run(svc, am, t0, lambda c: svc.records.create(c, "c360", "customer", {
        "name": "华东精密", "contract_end": "2026-04-15", "birthday": "1990-03-05", "last_purchase": "2025-10-01"}))
    b = run(svc, am, t0, lambda c: svc.records.create(c, "c360", "customer", {
        "name": "北辰零售", "last_purchase": "2026-02-20"}))
    assert sorted(_pending(svc, a["id"])) == [("birthday", sh(2026, 3, 5, 9)), ("contract_reminder", sh(2026, 3, 16, 9))]
    assert _pending(svc, b["id"]) == []

    # the contract is extended: the reminder moves with it
    run(svc, am, t0, lambda c: svc.records.update(c, "c360", "customer", a["id"], {"contract_end": "2026-05-31"}))
    assert sorted(_pending(svc, a["id"])) == [("birthday", sh(2026, 3, 5, 9)), ("contract_reminder", sh(2026, 5, 1, 9))]

    sched.tick(sh(2026, 3, 2, 10))                   # plans the nightly job
    assert _pending(svc, kind=CRON_KIND) == [("dormant", sh(2026, 3, 3, 2))]
    sched.tick(sh(2026, 3, 3, 2, 1))
    got_a = run(svc, am, t0, lambda c: svc.records.get(c, "c360", "customer", a["id"]))
    got_b = run(svc, am, t0, lambda c: svc.records.get(c, "c360", "customer", b["id"]))
    assert got_a["lifecycle"] == "dormant" and got_b["lifecycle"] == "active"
    assert _pending(svc, kind=CRON_KIND) == [("dormant", sh(2026, 3, 4, 2))]
    sched.tick(sh(2026, 3, 4, 2, 1))                 # a dormant customer is not woken twice
    with svc.engine.connect() as conn:
        capp = svc.catalog.get(conn, "c360")
        wakeups = conn.execute(sa.select(capp.tables["wakeup"])).mappings().all()
    assert [(w["title"], w["customer"], w["owner"]) for w in wakeups] == [("唤醒 华东精密", a["id"], am.id)]

    sched.tick(sh(2026, 3, 5, 9, 1))                 # birthday, and next year's is planned
    assert ("birthday", sh(2027, 3, 5, 9)) in _pending(svc, a["id"])
    sched.tick(sh(2026, 5, 1, 9, 1))                 # 30 days before the new contract end
    got_a = run(svc, am, t0, lambda c: svc.records.get(c, "c360", "customer", a["id"]))
    assert got_a["_tags"] == ["renewal"]
    with svc.engine.connect() as conn:
        notes = [n["message"] for n in outbox.notifications(conn, am.id)["items"]]
    assert notes == ["合同将于 2026-05-31 到期：华东精密", "今天是 华东精密 的生日"]
    summaries = [i["kind"] for i in timeline(svc, "c360", "customer", a["id"])]
    assert summaries.count("automation") == 3       # dormant, birthday, contract reminder


def test_changing_a_schedule_replans_every_record(world):
    svc, am = world
    sched = Scheduler(svc.engine, svc.catalog, svc.records, worker_id="w")
    t0 = sh(2026, 3, 2, 9, 0)
    rec = run(svc, am, t0, lambda c: svc.records.create(c, "c360", "customer", {"name": "甲", "contract_end": "2026-06-30"}))
    sched.tick(t0)
    assert _pending(svc, rec["id"]) == [("contract_reminder", sh(2026, 5, 31, 9))]
    doc = {**C360, "rules": [dict(C360["rules"][0], schedule={"field": "contract_end", "offset": {"days": -7},
                                                               "at": "10:30"})]}
    from tests.runtime.flow_support import republish
    republish(svc, doc)
    stats = sched.tick(t0.replace(hour=10))
    assert stats["sync"]["records_planned"] == 1
    assert _pending(svc, rec["id"]) == [("contract_reminder", sh(2026, 6, 23, 10, 30))]
    assert _pending(svc, kind=CRON_KIND) == []       # the nightly job is gone with its rule
