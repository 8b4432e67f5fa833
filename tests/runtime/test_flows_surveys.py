"""Survey links: single use, expiring, malformed or unknown tokens are 404, only the form's
questions are taken, and the answer is linked to the ticket."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from engines.errors import Conflict, JimuError, NotFound, ValidationFailed
from runtime import surveys
from runtime import system_tables as st
from runtime.flows_runtime import FlowService
from tests.runtime.flow_support import complaints_doc, install, person, run, sh, timeline


@pytest.fixture
def resolved(services):
    install(services, complaints_doc())
    person(services, "wang", ["supervisor"], supervises="service")
    li = person(services, "li", ["agent"], teams=["service"])
    flows = FlowService(services.records)
    now = sh(2026, 3, 2, 10)

    def make(email: str | None):
        cust = run(services, li, now, lambda c: services.records.create(
            c, "complaints", "customer", {"name": "客户", **({"email": email} if email else {})}))
        t = run(services, li, now, lambda c: services.records.create(
            c, "complaints", "ticket", {"subject": "噪音大", "customer": cust["id"]}))
        run(services, li, now, lambda c: flows.transition(c, "complaints", "ticket", t["id"], "accept"))
        run(services, li, now, lambda c: flows.transition(c, "complaints", "ticket", t["id"], "resolve",
                                                          values={"resolution": "已调整"}))
        with services.engine.connect() as conn:
            rows = conn.execute(sa.select(st.public_tokens).where(st.public_tokens.c.kind == "survey")).mappings()
            token = next(r["token"] for r in rows if json.loads(r["payload"])["record_id"] == t["id"])
        return t, token
    return services, make, now


def _answer(svc, token, body, now):
    return run(svc, surveys.SURVEY_ACTOR, now, lambda c: surveys.answer(c, svc.records, token, body))


def test_tokens_are_single_use_and_expire(resolved):
    svc, make, now = resolved
    ticket, token = make("a@example.cn")
    for bad in ("", "short", "has spaces in it......", "../../etc/passwd", "x" * 200, "A" * 32):
        with pytest.raises(NotFound):
            _answer(svc, bad, {"csat": 5}, now)
    with pytest.raises(ValidationFailed) as exc:
        _answer(svc, token, {"csat": 5, "ticket": 999, "owner": 1}, now)   # only the form's questions
    assert set(exc.value.details) == {"ticket", "owner"}
    with pytest.raises(ValidationFailed):
        _answer(svc, token, {"score": 9}, now)                            # csat is required
    out = _answer(svc, token, {"csat": 4}, now + timedelta(days=1))       # failed tries did not spend it
    assert out["record"]["ticket"] == ticket["id"]
    with pytest.raises(Conflict):
        _answer(svc, token, {"csat": 1}, now + timedelta(days=1))
    _t2, late = make("b@example.cn")
    with pytest.raises(JimuError) as gone:
        _answer(svc, late, {"csat": 5}, now + timedelta(days=14, seconds=1))
    assert gone.value.status == 410 and gone.value.code == "gone"


def test_survey_without_address_keeps_the_link_and_says_why(resolved):
    svc, make, now = resolved
    ticket, token = make(None)
    with svc.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(st.outbox)
                            .where(st.outbox.c.channel == "email")).scalar() == 0
    entry = next(i for i in timeline(svc, "complaints", "ticket", ticket["id"])
                 if i["kind"] == "transition" and i["details"]["transition"] == "resolve")
    survey = next(t for t in entry["details"]["trace"] if t.get("action") == "survey")
    assert survey["to"] == [] and "no address" in survey["skipped"]
    assert _answer(svc, token, {"csat": 5}, now)["follow_up"] == {"satisfied": True, "transition": "close"}
