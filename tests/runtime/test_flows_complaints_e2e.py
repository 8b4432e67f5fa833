"""The complaint-handling process end to end, on both back ends, with time advanced explicitly:
intake with grading → automatic dispatch → response SLA by severity on China business hours →
breach escalates to the supervisor exactly once and notifies → resolve requires a resolution →
survey link emailed to a real local SMTP listener → survey answered → ticket closed; the timeline
shows every step."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from engines.errors import Conflict, TransitionNotAllowed
from runtime import outbox, surveys
from runtime import system_tables as st
from runtime.flows_runtime import FlowService
from runtime.outbox import Outbox
from runtime.scheduler import Scheduler
from tests.runtime.flow_support import SmtpSink, body_text, complaints_doc, install, person, run, sh, timeline


@pytest.fixture
def world(services):
    install(services, complaints_doc())
    wang = person(services, "wang", ["supervisor"], supervises="service")
    li = person(services, "li", ["agent"], teams=["service"])
    return services, li, wang


def test_complaint_process_end_to_end(world):
    svc, li, wang = world
    flows = FlowService(svc.records)
    with SmtpSink() as smtp:
        sched = Scheduler(svc.engine, svc.catalog, svc.records, outbox=Outbox(svc.engine, smtp_url=smtp.url),
                          worker_id="sweeper-1")
        t0 = sh(2026, 3, 2, 10, 0)                     # Monday, a working day
        cust = run(svc, li, t0, lambda c: svc.records.create(
            c, "complaints", "customer", {"name": "华东精密", "email": "kehu@huadong.example.cn"}))
        # 1. intake with grading: urgency high → severity high; 2. dispatch: the service team's agent
        ticket = run(svc, li, t0, lambda c: svc.records.create(
            c, "complaints", "ticket", {"subject": "设备无法启动", "customer": cust["id"], "urgency": "high"}))
        assert ticket["severity"] == "high" and ticket["status"] == "new" and ticket["owner"] == li.id
        assert ticket["_flow"] == {"flow": "complaint_process", "state": "new", "revision": 1}
        first = next(s for s in ticket["_sla"] if s["key"] == "first_response")
        # 3. response SLA: 4 business hours from Mon 10:00 = 10–12 + 13:30–15:30
        assert first["status"] == "running" and first["due_at"] == "2026-03-02T15:30:00+08:00"
        assert first["remaining_seconds"] == 4 * 3600

        # nothing is due at noon; the warning (1 h before) fires at 14:30, not the breach
        assert sched.tick(sh(2026, 3, 2, 12, 0))["timers"]["done"] == 0
        sched.tick(sh(2026, 3, 2, 14, 45))
        rec = run(svc, li, sh(2026, 3, 2, 14, 45), lambda c: svc.records.get(c, "complaints", "ticket", ticket["id"]))
        assert rec["status"] == "new" and rec["sla_breached"] is False

        # 4. the breach: escalated to the supervisor, exactly once, and the supervisor is notified
        for when in (sh(2026, 3, 2, 15, 31), sh(2026, 3, 2, 15, 32), sh(2026, 3, 2, 17, 0), sh(2026, 3, 3, 10, 0)):
            sched.tick(when)
        rec = run(svc, wang, sh(2026, 3, 3, 10), lambda c: svc.records.get(c, "complaints", "ticket", ticket["id"]))
        assert rec["status"] == "escalated" and rec["owner"] == wang.id
        assert rec["sla_breached"] is True and rec["escalated"] is True
        assert next(s for s in rec["_sla"] if s["key"] == "first_response")["status"] == "breached"
        items = timeline(svc, "complaints", "ticket", ticket["id"])
        assert [i["details"]["transition"] for i in items if i["kind"] == "transition"] == ["escalate"]
        assert sum(1 for i in items if i["kind"] == "sla_breach") == 1
        with svc.engine.connect() as conn:
            notes = outbox.notifications(conn, wang.id)["items"]
            assert [n["message"] for n in notes if n["message"].startswith("SLA breached")] == [
                f"SLA breached: {ticket['number']} 设备无法启动"]
            assert outbox.unread_count(conn, li.id) >= 1          # the owner's warning

        # 5. resolve requires a resolution: refused, nothing changed
        t1 = sh(2026, 3, 3, 11, 0)
        with pytest.raises(TransitionNotAllowed) as refused:
            run(svc, wang, t1, lambda c: flows.transition(c, "complaints", "ticket", ticket["id"], "resolve"))
        assert refused.value.details["reason"] == "missing_required" and refused.value.details["fields"] == ["resolution"]
        same = run(svc, wang, t1, lambda c: svc.records.get(c, "complaints", "ticket", ticket["id"]))
        assert same["status"] == "escalated" and same["_version"] == rec["_version"]
        done = run(svc, wang, t1, lambda c: flows.transition(c, "complaints", "ticket", ticket["id"], "resolve",
                                                             comment="更换主板", values={"resolution": "已上门更换主板"}))
        assert done["status"] == "resolved" and done["resolution"] == "已上门更换主板"
        assert done["resolved_at"] == "2026-03-03T11:00:00+08:00"

        # 6. the survey link goes to a real SMTP listener after commit
        sched.tick(sh(2026, 3, 3, 11, 1))
        assert len(smtp.messages) == 1
        mail = smtp.messages[0]
        assert mail["X-Sink-Rcpt"] == "kehu@huadong.example.cn"
        token = re.search(r"/s/([A-Za-z0-9_-]+)", body_text(mail)).group(1)

        # 7. the customer answers: the answer is a survey record linked to the ticket, and it closes it
        t2 = sh(2026, 3, 4, 9, 30)
        answer = run(svc, surveys.SURVEY_ACTOR, t2, lambda c: surveys.answer(
            c, svc.records, token, {"csat": 5, "score": 9, "comment": "处理及时"}))
        assert answer["record"]["ticket"] == ticket["id"] and answer["follow_up"]["transition"] == "close"
        with pytest.raises(Conflict):
            run(svc, surveys.SURVEY_ACTOR, t2, lambda c: surveys.answer(c, svc.records, token, {"csat": 1}))
        closed = run(svc, wang, t2, lambda c: svc.records.get(c, "complaints", "ticket", ticket["id"]))
        assert closed["status"] == "closed" and closed["_flow"]["state"] == "closed"

    # 8. the timeline tells the whole story, in order
    items = timeline(svc, "complaints", "ticket", ticket["id"])
    kinds = [i["kind"] for i in items]
    assert kinds[0] == "create"
    story = [(i["kind"], (i["details"] or {}).get("transition")) for i in items
             if i["kind"] in ("create", "sla_warn", "sla_breach", "transition", "survey")]
    assert story == [("create", None), ("sla_warn", None), ("sla_breach", None), ("transition", "escalate"),
                     ("transition", "resolve"), ("survey", None), ("transition", "close")]
    resolve = next(i for i in items if i["kind"] == "transition" and i["details"]["transition"] == "resolve")
    assert resolve["summary"] == "escalated → resolved" and resolve["by"] == "wang"
    assert resolve["details"]["comment"] == "更换主板"
    assert any(i["kind"] == "message" and "email to" in i["summary"] for i in items)
    with svc.engine.connect() as conn:
        fired = conn.execute(sa.select(st.timers.c.kind, sa.func.count()).where(st.timers.c.status == "done")
                             .group_by(st.timers.c.kind)).all()
    assert dict(fired) == {"sla_warn": 1, "sla_breach": 1}
