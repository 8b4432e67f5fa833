"""The outbox: webhooks signed and retried with backoff then dead-lettered, email over real SMTP,
in-app notifications with unread counts; a failing endpoint never affects the record write."""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from runtime import outbox
from runtime import system_tables as st
from runtime.context import SYSTEM, Context
from runtime.outbox import Outbox
from tests.runtime.flow_support import (
    HookSink,
    SmtpSink,
    body_text,
    free_port,
    install,
    person,
    run,
    sh,
    timeline,
)


def hooks_app(url: str, secret_ref: str | None = "erp") -> dict:
    hook = {"url": url, **({"secret_ref": secret_ref} if secret_ref else {})}
    return {
        "app": "shop", "label": "商城", "timezone": "Asia/Shanghai", "roles": ["clerk"],
        "entities": [{"key": "order", "label": "订单", "title_field": "code", "fields": [
            {"key": "code", "type": "text", "label": "单号", "required": True},
            {"key": "total", "type": "currency", "label": "金额"},
            {"key": "buyer_email", "type": "email", "label": "邮箱"},
        ]}],
        "rules": [{"key": "to_erp", "kind": "automation", "entity": "order", "on": ["create"],
                   "actions": [{"webhook": hook},
                               {"email": {"to": "buyer_email", "subject": "订单 {code} 已收到",
                                          "body": "金额 {total} 元，感谢惠顾"}},
                               {"notify": {"to": ["role:clerk"], "message": "新订单 {code}"}}]}],
    }


def _order(svc, now, code="SO-1"):
    return run(svc, SYSTEM, now, lambda c: svc.records.create(
        c, "shop", "order", {"code": code, "total": "99.50", "buyer_email": "buyer@example.cn"}))


def _rows(svc, channel):
    with svc.engine.connect() as conn:
        return conn.execute(sa.select(st.outbox).where(st.outbox.c.channel == channel)).mappings().all()


def test_webhook_is_signed_and_delivered(services):
    svc = services
    with HookSink(200) as sink:
        install(svc, hooks_app(sink.url))
        now = sh(2026, 3, 2, 10)
        order = _order(svc, now)
        box = Outbox(svc.engine, secrets={"erp": "s3cret"}, smtp_url="")
        assert _rows(svc, "webhook")[0]["status"] == "pending"       # written with the record, not sent yet
        stats = box.deliver_due(now)
    assert len(sink.calls) == 1
    headers, body = sink.calls[0]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Jimu-Signature"] == expected and headers["Content-Type"].startswith("application/json")
    payload = json.loads(body)
    assert payload["entity"] == "order" and payload["id"] == order["id"] and payload["record"]["code"] == "SO-1"
    assert payload["record"]["total"] == "99.50"
    assert _rows(svc, "webhook")[0]["status"] == "sent" and stats == {"sent": 1, "retry": 1, "dead": 0}  # no SMTP here
    assert any(i["kind"] == "message" and "webhook" in i["summary"] for i in timeline(svc, "shop", "order", order["id"]))


@pytest.mark.parametrize("endpoint", ["http_500", "closed_port"])
def test_webhook_down_retries_with_backoff_then_dead_letter(services, endpoint):
    svc = services
    sink = HookSink(500)
    url = sink.url if endpoint == "http_500" else f"http://127.0.0.1:{free_port()}/hook"
    with sink:
        install(svc, hooks_app(url))
        t0 = sh(2026, 3, 2, 10)
        order = _order(svc, t0)                      # the record write is not affected by the endpoint
        box = Outbox(svc.engine, secrets={"erp": "k"}, smtp_url="", max_attempts=3,
                     base_delay=timedelta(seconds=30), timeout=2)
        assert box.deliver_due(t0)["retry"] >= 1
        row = _rows(svc, "webhook")[0]
        assert row["status"] == "failed" and row["attempts"] == 1
        assert row["next_attempt_at"] == t0 + timedelta(seconds=30)
        assert ("HTTP 500" if endpoint == "http_500" else "cannot reach") in row["last_error"]
        box.deliver_due(t0 + timedelta(seconds=10))          # not due yet: no attempt
        assert _rows(svc, "webhook")[0]["attempts"] == 1
        box.deliver_due(t0 + timedelta(seconds=31))
        row = _rows(svc, "webhook")[0]
        assert row["attempts"] == 2 and row["next_attempt_at"] == t0 + timedelta(seconds=91)   # 60 s backoff
        box.deliver_due(t0 + timedelta(seconds=92))
        row = _rows(svc, "webhook")[0]
        assert row["status"] == "dead" and row["attempts"] == 3
        box.deliver_due(t0 + timedelta(days=1))              # a dead letter is never retried
        assert _rows(svc, "webhook")[0]["attempts"] == 3
    if endpoint == "http_500":
        assert len(sink.calls) == 3
    rec = run(svc, SYSTEM, t0, lambda c: svc.records.get(c, "shop", "order", order["id"]))
    assert rec["code"] == "SO-1"
    with svc.engine.connect() as conn:
        log = [i for i in outbox.deliveries(conn, status="dead") if i["channel"] == "webhook"]
    assert len(log) == 1 and log[0]["target"] == url and log[0]["attempts"] == 3
    assert any("dead letter" in i["summary"] for i in timeline(svc, "shop", "order", order["id"]))


def test_email_over_real_smtp_and_notifications(services):
    svc = services
    with SmtpSink() as smtp, HookSink(200) as sink:
        install(svc, hooks_app(sink.url, secret_ref=None))
        clerk = person(svc, "clerk1", ["clerk"], app="shop")
        now = sh(2026, 3, 2, 10)
        order = _order(svc, now, "SO-9")
        Outbox(svc.engine, smtp_url=smtp.url, sender="shop@example.cn").deliver_due(now)
    assert len(smtp.messages) == 1
    msg = smtp.messages[0]
    assert msg["To"] == "buyer@example.cn" and msg["From"] == "shop@example.cn"
    assert msg["Subject"] == "订单 SO-9 已收到"
    assert "99.50" in body_text(msg)
    assert "X-Jimu-Signature" not in sink.calls[0][0]          # no secret configured: unsigned
    with svc.engine.begin() as conn:
        notes = outbox.notifications(conn, clerk.id)
        assert notes["unread"] == 1 and notes["items"][0]["message"] == "新订单 SO-9"
        assert notes["items"][0]["record_id"] == order["id"]
        assert outbox.mark_read(conn, clerk.id, everything=True) == 1
        assert outbox.unread_count(conn, clerk.id) == 0


def test_email_without_smtp_is_retried_not_lost(services):
    svc = services
    with HookSink(200) as sink:
        install(svc, hooks_app(sink.url, secret_ref=None))
        now = sh(2026, 3, 2, 10)
        _order(svc, now)
        Outbox(svc.engine, smtp_url="").deliver_due(now)
    row = _rows(svc, "email")[0]
    assert row["status"] == "failed" and "JIMU_SMTP_URL" in row["last_error"]


def test_messages_of_a_rolled_back_write_are_never_sent(services):
    svc = services
    with HookSink(200) as sink:
        install(svc, hooks_app(sink.url, secret_ref=None))
        with pytest.raises(RuntimeError), svc.engine.begin() as conn:
            svc.records.create(Context(conn, SYSTEM, sh(2026, 3, 2, 10)), "shop", "order", {"code": "SO-X"})
            raise RuntimeError("the request failed later")
        Outbox(svc.engine, smtp_url="").deliver_due(sh(2026, 3, 2, 10))
    assert sink.calls == [] and _rows(svc, "webhook") == []
