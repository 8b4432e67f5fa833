"""The outbox: side effects written inside the record transaction, delivered after it commits.

Owns ``enqueue`` (a row in ``jimu_outbox``: channel ``notify``, ``email`` or ``webhook``), delivery
(``Outbox.deliver_due``: claim due rows, deliver outside any transaction, record the outcome), the
retry policy (exponential backoff, dead letter after ``max_attempts``), the delivery log, and in-app
notifications (``jimu_notifications`` rows, unread counts, marking read).

Email goes over SMTP to ``JIMU_SMTP_URL`` (``smtp://[user:password@]host:port``, ``smtps://`` for
TLS); webhooks are a JSON POST with ``X-Jimu-Signature: sha256=<HMAC-SHA256 hex of the body>``,
keyed by the secret named by ``secret_ref`` (``JIMU_WEBHOOK_SECRET_<REF>`` in the environment, or
the ``secrets`` given to ``Outbox``). Deciding who is notified lives in ``runtime.actions``.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import smtplib
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engines.errors import ValidationFailed

from . import audit
from . import system_tables as st
from .ids import MAX_ID

log = logging.getLogger("jimu.outbox")

CHANNELS = ("notify", "email", "webhook")
MAX_MARK = 1000                      # notification ids marked read in one call
MAX_ATTEMPTS = 5
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=6)
LEASE = timedelta(minutes=5)
SIGNATURE_HEADER = "X-Jimu-Signature"


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


def enqueue(conn: Connection, channel: str, payload: Mapping[str, Any], *, now: datetime, app: str | None = None,
            entity: str | None = None, record_id: int | None = None) -> int:
    """Write one message to deliver after commit (in the caller's transaction)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown outbox channel {channel!r}")
    return conn.execute(st.outbox.insert().values(
        created_at=_utc(now), channel=channel, app=app, entity=entity, record_id=record_id,
        payload=json.dumps(dict(payload), ensure_ascii=False, default=str), status="pending", attempts=0,
        next_attempt_at=_utc(now))).inserted_primary_key[0]


def sign(secret: str | bytes, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class DeliveryError(Exception):
    """One failed attempt; the message says why (kept in the delivery log)."""


class Outbox:
    """Delivers due outbox rows. Stateless apart from its configuration; safe to share."""

    def __init__(self, engine: Engine, *, smtp_url: str | None = None, sender: str | None = None,
                 secrets: Mapping[str, str] | None = None, max_attempts: int = MAX_ATTEMPTS,
                 base_delay: timedelta = BASE_DELAY, timeout: float = 10.0, worker: str = "outbox"):
        self.engine = engine
        self.smtp_url = smtp_url if smtp_url is not None else os.environ.get("JIMU_SMTP_URL")
        self.sender = sender or os.environ.get("JIMU_SMTP_FROM") or "jimu@localhost"
        self.secrets = dict(secrets or {})
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.timeout = timeout
        self.worker = worker

    # ------------------------------------------------------------------ claiming
    def _claim(self, now: datetime, limit: int) -> list[dict]:
        o = st.outbox
        due = (sa.select(o.c.id).where(o.c.status.in_(("pending", "failed", "sending")), o.c.next_attempt_at <= now)
               .order_by(o.c.next_attempt_at, o.c.id).limit(limit).with_for_update(skip_locked=True))
        with self.engine.begin() as conn:
            rows = conn.execute(o.update().where(o.c.id.in_(due.scalar_subquery()))
                                .values(status="sending", attempts=o.c.attempts + 1, next_attempt_at=now + LEASE)
                                .returning(*o.c)).mappings().all()
        return sorted((dict(r) for r in rows), key=lambda r: r["id"])

    def deliver_due(self, now: datetime | None = None, limit: int = 100) -> dict:
        """Deliver what is due now; answers counts by outcome (sent, retry, dead)."""
        now = _utc(now or datetime.now(UTC))
        stats = {"sent": 0, "retry": 0, "dead": 0}
        for _ in range(100):
            rows = self._claim(now, limit)
            for r in rows:
                stats[self._deliver_one(r, now)] += 1
            if len(rows) < limit:
                break
        return stats

    def _deliver_one(self, r: dict, now: datetime) -> str:
        payload = json.loads(r["payload"])
        o = st.outbox
        try:
            if r["channel"] == "notify":
                with self.engine.begin() as conn:   # local: the notification rows and "sent" commit together
                    n = self._notify(conn, r, payload, now)
                    conn.execute(o.update().where(o.c.id == r["id"], o.c.status == "sending")
                                 .values(status="sent", sent_at=now, last_error=None))
                    log_message(conn, r, now, f"notified {n} user(s): {payload.get('message', '')}")
                return "sent"
            if r["channel"] == "email":
                self._email(payload)
                what = f"email to {payload.get('to')}: {payload.get('subject', '')}"
            else:
                status = self._webhook(r, payload)
                what = f"webhook {payload.get('url')} → HTTP {status}"
        except Exception as exc:  # noqa: BLE001 - any failure is one failed attempt
            return self._failed(r, now, exc)
        with self.engine.begin() as conn:
            conn.execute(o.update().where(o.c.id == r["id"]).values(status="sent", sent_at=now, last_error=None))
            log_message(conn, r, now, what)
        return "sent"

    def _failed(self, r: dict, now: datetime, exc: Exception) -> str:
        o = st.outbox
        message = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
        dead = r["attempts"] >= self.max_attempts
        delay = min(self.base_delay * (2 ** max(0, r["attempts"] - 1)), MAX_DELAY)
        with self.engine.begin() as conn:
            conn.execute(o.update().where(o.c.id == r["id"]).values(
                status="dead" if dead else "failed", last_error=message[:2000],
                next_attempt_at=now if dead else now + delay))
            if dead:
                log_message(conn, r, now, f"{r['channel']} undeliverable after {r['attempts']} attempts "
                                          f"(dead letter): {message[:200]} / 多次投递失败，已转入死信")
        log.warning("outbox %s (%s) attempt %s failed: %s", r["id"], r["channel"], r["attempts"], message)
        return "dead" if dead else "retry"

    # ------------------------------------------------------------------ channels
    def _notify(self, conn: Connection, r: dict, payload: dict, now: datetime) -> int:
        ids = sorted({int(u) for u in payload.get("user_ids") or []})
        if not ids:
            return 0
        active = [u for (u,) in conn.execute(sa.select(st.users.c.id).where(st.users.c.id.in_(ids),
                                                                              st.users.c.active.is_(True)))]
        if active:
            conn.execute(st.notifications.insert(), [
                {"user_id": u, "created_at": now, "app": r["app"], "entity": r["entity"],
                 "record_id": r["record_id"], "message": str(payload.get("message") or "")[:4000]} for u in active])
        return len(active)

    def _email(self, payload: dict) -> None:
        if not self.smtp_url:
            raise DeliveryError("JIMU_SMTP_URL is not set: email cannot be sent / 未配置 SMTP 服务器")
        to = payload.get("to")
        recipients = [to] if isinstance(to, str) else list(to or [])
        if not recipients:
            raise DeliveryError("no recipient / 没有收件人")
        parts = urlsplit(self.smtp_url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise DeliveryError(f"JIMU_SMTP_URL must look like smtp://host:port, got {self.smtp_url!r}")
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(recipients)
        msg["Subject"] = str(payload.get("subject") or "")
        msg.set_content(str(payload.get("body") or ""))
        klass = smtplib.SMTP_SSL if parts.scheme == "smtps" else smtplib.SMTP
        try:
            with klass(parts.hostname, parts.port or (465 if parts.scheme == "smtps" else 25),
                       timeout=self.timeout) as smtp:
                if parts.username:
                    smtp.login(unquote(parts.username), unquote(parts.password or ""))
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"SMTP: {type(exc).__name__}: {exc}") from exc

    def secret_for(self, ref: str | None) -> str | None:
        if not ref:
            return self.secrets.get("") or os.environ.get("JIMU_WEBHOOK_SECRET")
        if ref in self.secrets:
            return self.secrets[ref]
        return os.environ.get("JIMU_WEBHOOK_SECRET_" + "".join(c if c.isalnum() else "_" for c in ref).upper())

    def _webhook(self, r: dict, payload: dict) -> int:
        url = payload.get("url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise DeliveryError(f"bad webhook URL {url!r} / 无效的 webhook 地址")
        body = json.dumps(payload.get("body") or {}, ensure_ascii=False, sort_keys=True, default=str).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "jimu-webhook",
                   "X-Jimu-Delivery": str(r["id"])}
        secret = self.secret_for(payload.get("secret_ref"))
        if payload.get("secret_ref") and not secret:
            raise DeliveryError(f"unknown webhook secret {payload.get('secret_ref')!r} / 未配置 webhook 密钥")
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, body)
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - http(s) checked above
                return resp.status
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"HTTP {exc.code} from {url}") from exc
        except (OSError, urllib.error.URLError) as exc:
            raise DeliveryError(f"cannot reach {url}: {exc}") from exc


def log_message(conn: Connection, r: dict, now: datetime, summary: str) -> None:
    """A delivered (or dead) message shows on its record's timeline."""
    if r.get("app") and r.get("entity") and r.get("record_id"):
        audit.write(conn, at=now, user_id=None, action="message", app=r["app"], entity=r["entity"],
                    record_id=r["record_id"], summary=summary[:500],
                    details={"channel": r["channel"], "outbox_id": r["id"], "attempts": r["attempts"]})


def deliveries(conn: Connection, *, status: str | None = None, app: str | None = None,
               record_id: int | None = None, limit: int = 100) -> list[dict]:
    """The delivery log: outbox rows newest first, with attempts and the last error."""
    o = st.outbox
    if record_id is not None and not 0 < record_id <= MAX_ID:
        return []                             # no record has such an id (nor can the driver bind it)
    q = sa.select(o).order_by(o.c.id.desc()).limit(max(1, min(int(limit), 500)))
    for col, value in ((o.c.status, status), (o.c.app, app), (o.c.record_id, record_id)):
        if value is not None:
            q = q.where(col == value)
    out = []
    for r in conn.execute(q).mappings():
        payload = json.loads(r["payload"])
        target = payload.get("to") or payload.get("url") or payload.get("user_ids")
        out.append({"id": r["id"], "channel": r["channel"], "status": r["status"], "attempts": r["attempts"],
                    "app": r["app"], "entity": r["entity"], "record_id": r["record_id"], "target": target,
                    "created_at": _iso(r["created_at"]), "sent_at": _iso(r["sent_at"]),
                    "next_attempt_at": _iso(r["next_attempt_at"]), "last_error": r["last_error"]})
    return out


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


# ---------------------------------------------------------------------- in-app notifications
def notifications(conn: Connection, user_id: int, *, unread_only: bool = False, limit: int = 50) -> dict:
    n = st.notifications
    q = sa.select(n).where(n.c.user_id == user_id)
    if unread_only:
        q = q.where(n.c.read_at.is_(None))
    rows = conn.execute(q.order_by(n.c.id.desc()).limit(max(1, min(int(limit), 500)))).mappings().all()
    items = [{"id": r["id"], "at": _iso(r["created_at"]), "app": r["app"], "entity": r["entity"],
              "record_id": r["record_id"], "message": r["message"], "read": r["read_at"] is not None}
             for r in rows]
    return {"items": items, "unread": unread_count(conn, user_id)}


def unread_count(conn: Connection, user_id: int) -> int:
    n = st.notifications
    return conn.execute(sa.select(sa.func.count()).select_from(n)
                        .where(n.c.user_id == user_id, n.c.read_at.is_(None))).scalar_one()


def mark_read(conn: Connection, user_id: int, ids: Any = None, *, everything: bool = False,
              now: datetime | None = None) -> int:
    n = st.notifications
    q = n.update().where(n.c.user_id == user_id, n.c.read_at.is_(None))
    if not everything:
        if not isinstance(ids, list) or len(ids) > MAX_MARK or \
                not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ValidationFailed('Send {"ids": [1, 2]} (at most 1000) or {"all": true} / 请提供通知编号列表或 all',
                                   {"ids": ["a list of at most 1000 ids"]})
        q = q.where(n.c.id.in_([i for i in ids if 0 < i <= MAX_ID]))   # others name no notification
    return conn.execute(q.values(read_at=_utc(now or datetime.now(UTC)))).rowcount
