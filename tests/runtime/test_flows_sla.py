"""SLA clocks on stored records: pauses really stop the clock (over a weekend and a public holiday),
the explanation agrees with the engine, targets follow the severity, and restarts lose nothing."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from runtime import system_tables as st
from runtime import timers
from runtime.flows_runtime import FlowService, explain_sla, record_pauses
from runtime.scheduler import Scheduler
from tests.runtime.flow_support import complaints_doc, install, person, run, sh, timeline


@pytest.fixture
def world(services):
    install(services, complaints_doc())
    wang = person(services, "wang", ["supervisor"], supervises="service")
    li = person(services, "li", ["agent"], teams=["service"])
    return services, li, wang


def _sla(rec, key):
    return next(s for s in rec["_sla"] if s["key"] == key)


def _get(svc, actor, now, rid):
    return run(svc, actor, now, lambda c: svc.records.get(c, "complaints", "ticket", rid))


def test_pause_over_weekend_and_holiday_does_not_breach(world):
    svc, li, wang = world
    flows = FlowService(svc.records)
    sched = Scheduler(svc.engine, svc.catalog, svc.records, worker_id="w")
    created = sh(2026, 4, 3, 9, 0)               # Friday; Sat–Mon 4–6 April is the Qingming holiday
    rec = run(svc, li, created, lambda c: svc.records.create(c, "complaints", "ticket",
                                                             {"subject": "发票抬头错误", "urgency": "medium"}))
    rid = rec["id"]
    assert rec["severity"] == "medium"
    # unpaused, 8 business hours from Fri 09:00 would be due Tue 7 April 09:30
    assert _sla(rec, "resolution")["due_at"] == "2026-04-07T09:30:00+08:00"
    run(svc, li, sh(2026, 4, 3, 9, 30), lambda c: flows.transition(c, "complaints", "ticket", rid, "accept"))
    paused = run(svc, li, sh(2026, 4, 3, 10, 0), lambda c: flows.transition(c, "complaints", "ticket", rid, "wait"))
    assert _sla(paused, "resolution")["status"] == "paused" and _sla(paused, "resolution")["due_at"] is None
    assert _sla(paused, "resolution")["remaining_seconds"] == 7 * 3600

    # the customer answers after the long weekend; the scheduler runs all along
    for when in (sh(2026, 4, 4, 12), sh(2026, 4, 6, 18), sh(2026, 4, 7, 9, 31), sh(2026, 4, 7, 9, 59)):
        sched.tick(when)
        assert _sla(_get(svc, li, when, rid), "resolution")["status"] == "paused"
    resumed = run(svc, li, sh(2026, 4, 7, 10, 0), lambda c: flows.transition(c, "complaints", "ticket", rid, "resume"))
    res = _sla(resumed, "resolution")
    # 1 h used before the pause; 7 h left from Tue 10:00 → Tue 10–12, 13:30–18, Wed 9:00–9:30
    assert res["status"] == "running" and res["due_at"] == "2026-04-08T09:30:00+08:00"
    sched.tick(sh(2026, 4, 7, 17, 59))
    sched.tick(sh(2026, 4, 8, 9, 29))
    later = _get(svc, li, sh(2026, 4, 8, 9, 29), rid)
    assert _sla(later, "resolution")["status"] == "running" and later["sla_breached"] is False
    assert not any(i["kind"] == "sla_breach" for i in timeline(svc, "complaints", "ticket", rid))

    # the explanation, given the same pause, gives the same due time and names the holiday
    with svc.engine.connect() as conn:
        from runtime.context import Context
        ctx = Context(conn, li, sh(2026, 4, 8, 9))
        capp = svc.catalog.get(conn, "complaints")
        pauses = record_pauses(conn, capp, "ticket", rid, "resolution")
        assert pauses == [(sh(2026, 4, 3, 10, 0), sh(2026, 4, 7, 10, 0))]
        explained = {e["key"]: e for e in explain_sla(ctx, capp, "ticket", {"severity": "medium"}, created,
                                                     pauses=pauses)}
    assert explained["resolution"]["due_at"] == res["due_at"]
    assert any("Tomb" in (h["name"] or "") or "清明" in (h["name"] or "") for h in explained["resolution"]["holidays"])
    assert explained["resolution"]["paused_seconds"] == int(7.5 * 3600)

    # and the breach does come once the real due time passes
    sched.tick(sh(2026, 4, 8, 9, 31))
    assert _get(svc, wang, sh(2026, 4, 8, 9, 31), rid)["_sla"][1]["status"] == "breached"
    assert sum(1 for i in timeline(svc, "complaints", "ticket", rid) if i["kind"] == "sla_breach") == 1


def test_target_follows_severity_and_timers_are_replanned(world):
    svc, li, wang = world
    t0 = sh(2026, 3, 2, 10, 0)
    rec = run(svc, li, t0, lambda c: svc.records.create(c, "complaints", "ticket", {"subject": "x", "urgency": "low"}))
    assert _sla(rec, "first_response")["due_at"] == "2026-03-04T11:00:00+08:00"     # 16 h
    up = run(svc, wang, sh(2026, 3, 2, 11), lambda c: svc.records.update(c, "complaints", "ticket", rec["id"],
                                                                          {"urgency": "high"}))
    assert up["severity"] == "high" and _sla(up, "first_response")["due_at"] == "2026-03-02T15:30:00+08:00"
    with svc.engine.connect() as conn:
        pending = timers.pending_for(conn, app="complaints", entity="ticket", record_id=rec["id"])
    breach = [t for t in pending if t["kind"] == "sla_breach" and t["payload"]["sla"] == "first_response"]
    assert [t["due_at"] for t in breach] == [sh(2026, 3, 2, 15, 30)]


def test_timers_due_while_down_fire_at_the_next_start(world, db_url):
    svc, li, wang = world
    t0 = sh(2026, 3, 2, 10, 0)
    rec = run(svc, li, t0, lambda c: svc.records.create(c, "complaints", "ticket", {"subject": "停机", "urgency": "high"}))
    # the process that would have fired at 15:30 was down; a fresh scheduler starts the next morning
    fresh = Scheduler.for_url(db_url, worker_id="after-restart")
    try:
        stats = fresh.tick(sh(2026, 3, 3, 9, 5))
    finally:
        fresh.engine.dispose()
    assert stats["timers"]["done"] >= 2                   # the warning and the breach, once each
    again = _get(svc, wang, sh(2026, 3, 3, 9, 6), rec["id"])
    assert again["status"] == "escalated" and again["sla_breached"] is True
    items = timeline(svc, "complaints", "ticket", rec["id"])
    assert [i["details"]["transition"] for i in items if i["kind"] == "transition"] == ["escalate"]
    breach = next(i for i in items if i["kind"] == "sla_breach")
    assert breach["details"]["due_at"].startswith("2026-03-02T15:30")
    assert Scheduler(svc.engine, svc.catalog, svc.records).tick(sh(2026, 3, 3, 9, 10))["timers"]["done"] == 0


def test_running_instances_keep_their_revision(world):
    svc, li, wang = world
    flows = FlowService(svc.records)
    t0 = sh(2026, 3, 2, 10, 0)
    old = run(svc, li, t0, lambda c: svc.records.create(c, "complaints", "ticket", {"subject": "旧流程", "urgency": "low"}))
    # revision 2: "accept" now needs a response note and first_response is only 1 hour
    doc = complaints_doc()
    doc["entities"][1]["fields"].append({"key": "note", "type": "text", "label": "说明"})
    flow = doc["flows"][0]
    next(t for t in flow["transitions"] if t["key"] == "accept")["require"] = ["note"]
    flow["slas"][0]["target"] = {"hours": 1}
    from tests.runtime.flow_support import republish
    republish(svc, doc)
    new = run(svc, li, t0 + timedelta(minutes=5), lambda c: svc.records.create(
        c, "complaints", "ticket", {"subject": "新流程", "urgency": "low"}))
    assert old["_flow"]["revision"] == 1 and new["_flow"]["revision"] == 2
    assert _sla(new, "first_response")["due_at"] == "2026-03-02T11:05:00+08:00"
    assert _sla(_get(svc, li, t0, old["id"]), "first_response")["due_at"] == "2026-03-04T11:00:00+08:00"
    moved = run(svc, li, sh(2026, 3, 2, 10, 30), lambda c: flows.transition(c, "complaints", "ticket", old["id"], "accept"))
    assert moved["status"] == "in_progress" and moved["_flow"]["revision"] == 1
    from engines.errors import TransitionNotAllowed
    with pytest.raises(TransitionNotAllowed) as exc:
        run(svc, li, sh(2026, 3, 2, 10, 30), lambda c: flows.transition(c, "complaints", "ticket", new["id"], "accept"))
    assert exc.value.details["fields"] == ["note"]


def test_escalation_chain_fires_each_level_once(services):
    doc = complaints_doc()
    resolution = doc["flows"][0]["slas"][1]
    resolution["escalations"] = [
        {"after": {"hours": 0}, "actions": [{"notify": {"to": ["supervisor"], "message": "L1 {number}"}}]},
        {"after": {"hours": 4}, "actions": [{"notify": {"to": ["user:boss"], "message": "L2 {number}"}},
                                            {"set": {"severity": "'critical'"}}]},
    ]
    install(services, doc)
    wang = person(services, "wang", ["supervisor"], supervises="service")
    boss = person(services, "boss", ["supervisor"])
    li = person(services, "li", ["agent"], teams=["service"])
    svc = services
    flows = FlowService(svc.records)
    sched = Scheduler(svc.engine, svc.catalog, svc.records, worker_id="w")
    t0 = sh(2026, 3, 2, 9, 0)
    rec = run(svc, li, t0, lambda c: svc.records.create(c, "complaints", "ticket", {"subject": "漏电", "urgency": "medium"}))
    run(svc, li, sh(2026, 3, 2, 9, 10), lambda c: flows.transition(c, "complaints", "ticket", rec["id"], "accept"))
    # resolution: 8 business hours → due Tue 3 March 09:30; level 2 four business hours later, 13:30 + 30 min
    assert _sla(_get(svc, li, t0, rec["id"]), "resolution")["due_at"] == "2026-03-03T09:30:00+08:00"
    for when in (sh(2026, 3, 3, 9, 31), sh(2026, 3, 3, 12, 0), sh(2026, 3, 3, 14, 0), sh(2026, 3, 3, 16, 0),
                 sh(2026, 3, 4, 10, 0)):
        sched.tick(when)
    from runtime import outbox
    with svc.engine.connect() as conn:
        to_wang = [n["message"] for n in outbox.notifications(conn, wang.id)["items"]]
        to_boss = [n["message"] for n in outbox.notifications(conn, boss.id)["items"]]
    number = rec["number"]
    assert to_wang == [f"L1 {number}"] and to_boss == [f"L2 {number}"]
    items = timeline(svc, "complaints", "ticket", rec["id"])
    assert [i["details"]["event"] for i in items if i["kind"] in ("sla_breach", "sla_escalation")] == [
        "breach", "escalate:1", "escalate:2"]
    with svc.engine.connect() as conn:
        fired = conn.execute(sa.select(st.timers).where(st.timers.c.kind == "sla_escalation",
                                                        st.timers.c.status == "done")).mappings().all()
    # level 1 at the breach, level 2 four business hours later: 09:30–12:00 + 13:30–15:00
    assert sorted(r["due_at"] for r in fired) == [sh(2026, 3, 3, 9, 30), sh(2026, 3, 3, 15, 0)]
    assert _get(svc, li, sh(2026, 3, 4, 10), rec["id"])["severity"] == "critical"


def test_deleting_a_record_cancels_its_timers(world):
    svc, li, wang = world
    rec = run(svc, li, sh(2026, 3, 2, 10), lambda c: svc.records.create(c, "complaints", "ticket", {"subject": "删"}))
    with svc.engine.connect() as conn:
        assert timers.pending_for(conn, app="complaints", entity="ticket", record_id=rec["id"])
    run(svc, wang, sh(2026, 3, 2, 11), lambda c: svc.records.delete(c, "complaints", "ticket", rec["id"]))
    with svc.engine.connect() as conn:
        assert timers.pending_for(conn, app="complaints", entity="ticket", record_id=rec["id"]) == []
    assert Scheduler(svc.engine, svc.catalog, svc.records).tick(sh(2026, 3, 9, 10))["timers"]["done"] == 0
