"""Helpers of the flow, scheduler and outbox tests: a complaint-handling app, people, a clock,
a real local SMTP listener (a minimal asyncio SMTP server) and a local HTTP endpoint for webhooks.
"""
from __future__ import annotations

import asyncio
import copy
import email
import email.policy
import json
import socket
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

from runtime import publish, users
from runtime import system_tables as st
from runtime.context import SYSTEM, Context

SH = ZoneInfo("Asia/Shanghai")


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


CALENDAR = {"key": "cn_business_hours", "timezone": "Asia/Shanghai", "weekdays": ["mon", "tue", "wed", "thu", "fri"],
            "hours": ["09:00-12:00", "13:30-18:00"], "holidays": "CN", "extra_holidays": ["2026-12-31"]}

STATES = ["new", "assigned", "in_progress", "waiting_customer", "escalated", "resolved", "closed"]

COMPLAINTS = {
    "app": "complaints",
    "label": "客户投诉处理",
    "timezone": "Asia/Shanghai",
    "roles": ["agent", "supervisor"],
    "entities": [
        {"key": "customer", "label": "客户", "title_field": "name", "fields": [
            {"key": "name", "type": "text", "label": "名称", "required": True},
            {"key": "email", "type": "email", "label": "邮箱"},
        ]},
        {"key": "ticket", "label": "投诉工单", "title_field": "subject", "fields": [
            {"key": "number", "type": "autonumber", "label": "工单号", "format": "TKT-{0000}"},
            {"key": "subject", "type": "text", "label": "主题", "required": True},
            {"key": "customer", "type": "lookup", "label": "客户", "target": "customer"},
            {"key": "urgency", "type": "select", "label": "紧急程度", "options": ["low", "medium", "high"],
             "default": "medium"},
            {"key": "impact", "type": "select", "label": "影响范围", "options": ["single", "widespread"],
             "default": "single"},
            {"key": "severity", "type": "select", "label": "级别", "default": "low",
             "options": [{"value": "low", "label": "低"}, {"value": "medium", "label": "中"},
                         {"value": "high", "label": "高"}, {"value": "critical", "label": "紧急"}]},
            {"key": "status", "type": "select", "label": "状态", "options": STATES},
            {"key": "responded_at", "type": "datetime", "label": "首次响应"},
            {"key": "resolution", "type": "textarea", "label": "处理结果"},
            {"key": "resolved_at", "type": "datetime", "label": "解决时间"},
            {"key": "escalated", "type": "boolean", "label": "已升级", "default": False},
            {"key": "sla_breached", "type": "boolean", "label": "SLA 超时", "default": False},
            {"key": "compensation", "type": "currency", "label": "补偿金额"},
            {"key": "handler", "type": "user", "label": "处理人"},
        ]},
        {"key": "survey", "label": "满意度调查", "fields": [
            {"key": "ticket", "type": "lookup", "label": "工单", "target": "ticket", "required": True},
            {"key": "csat", "type": "rating", "label": "满意度", "required": True, "min": 1, "max": 5},
            {"key": "score", "type": "number", "label": "推荐意愿", "min": 0, "max": 10},
            {"key": "comment", "type": "textarea", "label": "意见"},
        ]},
    ],
    "forms": [
        {"key": "satisfaction", "label": "满意度调查", "entity": "survey",
         "layout": [{"section": "您的评价", "columns": 1, "fields": ["csat", "score", "comment"]}]},
    ],
    "rules": [
        {"key": "grade", "kind": "compute", "entity": "ticket", "target": "severity",
         "condition": "changed(urgency) or changed(impact)",   # an escalation's own severity stays
         "expression": "'critical' if urgency == 'high' and impact == 'widespread' else "
                       "('high' if urgency == 'high' else ('medium' if urgency == 'medium' else 'low'))"},
        {"key": "dispatch", "kind": "assign", "entity": "ticket", "target": "owner", "on": ["create"],
         "routes": [{"condition": "severity == 'critical'", "to": "role:supervisor"}],
         "fallback": {"to": "team:service", "strategy": "least_loaded"}},
    ],
    "flows": [{
        "key": "complaint_process", "entity": "ticket", "state_field": "status", "initial": "new",
        "states": [
            {"key": "new", "label": "待受理"},
            {"key": "assigned", "label": "已分派"},
            {"key": "in_progress", "label": "处理中"},
            {"key": "waiting_customer", "label": "待客户回复"},
            {"key": "escalated", "label": "已升级"},
            {"key": "resolved", "label": "已解决", "on_enter": [
                {"survey": {"form": "satisfaction", "to": "customer.email", "satisfied": "csat >= 4",
                            "on_satisfied": "close", "on_unsatisfied": "reopen"}}]},
            {"key": "closed", "label": "已关闭", "final": True},
        ],
        "transitions": [
            {"key": "accept", "from": ["new", "assigned"], "to": "in_progress", "roles": ["agent", "supervisor"],
             "actions": [{"set": {"responded_at": "NOW()"}}]},
            {"key": "wait", "from": "in_progress", "to": "waiting_customer", "roles": ["agent", "supervisor"]},
            {"key": "resume", "from": "waiting_customer", "to": "in_progress", "roles": ["agent", "supervisor"]},
            {"key": "resolve", "from": ["in_progress", "escalated"], "to": "resolved",
             "roles": ["agent", "supervisor"], "require": ["resolution"], "condition": "not ISBLANK(customer)",
             "actions": [{"set": {"resolved_at": "NOW()"}}]},
            {"key": "escalate", "label": "升级", "from": ["new", "assigned", "in_progress"], "to": "escalated",
             "roles": ["supervisor"],
             "actions": [{"set": {"escalated": "True"}}, {"assign": {"to": "role:supervisor"}}]},
            {"key": "reopen", "from": "resolved", "to": "in_progress", "roles": ["agent", "supervisor"]},
            {"key": "close", "from": "resolved", "to": "closed", "roles": ["supervisor"]},
            {"key": "refund", "from": "resolved", "to": "closed", "roles": ["agent", "supervisor"],
             "condition": "COALESCE(compensation, 0) > 0",
             "approval": {"approvers": "role:supervisor", "mode": "any"}},
        ],
        "slas": [
            {"key": "first_response", "start": {"enter": "new"}, "stop": {"enter": ["in_progress", "resolved"]},
             "target": {"by": "severity", "hours": {"critical": 2, "high": 4, "medium": 8, "low": 16}},
             "calendar": "cn_business_hours", "warn_before": {"hours": 1},
             "on_breach": [{"set": {"sla_breached": "True"}}, {"transition": "escalate"},
                           {"notify": {"to": ["role:supervisor"], "message": "SLA breached: {number} {subject}"}}]},
            {"key": "resolution", "start": {"enter": "new"}, "stop": {"enter": ["resolved", "closed"]},
             "target": {"by": "severity", "hours": {"critical": 8, "high": 16, "medium": 8, "low": 40}},
             "calendar": "cn_business_hours", "pause_in": ["waiting_customer"]},
        ],
    }],
    "calendars": [CALENDAR],
    "permissions": [
        {"role": "agent", "entity": "ticket", "create": True, "read": "own", "update": "own", "delete": "none",
         "readonly": ["severity", "sla_breached", "escalated"]},
        {"role": "agent", "entity": "customer", "create": True, "read": "all", "update": "all"},
        {"role": "supervisor", "entity": "*", "create": True, "read": "all", "update": "all", "delete": "all"},
    ],
}


def complaints_doc(**changes) -> dict:
    doc = copy.deepcopy(COMPLAINTS)
    doc.update(changes)
    return doc


def install(svc, doc: dict, now: datetime | None = None) -> None:
    with svc.engine.begin() as conn:
        ctx = Context(conn, SYSTEM, now or sh(2026, 1, 5, 9))
        if conn.execute(st.teams.select().where(st.teams.c.key == "service")).first() is None:
            conn.execute(st.teams.insert().values(key="service", label="客服一组"))
        publish.create_app(ctx, doc)
        publish.publish(ctx, svc.catalog, doc["app"])


def republish(svc, doc: dict, now: datetime | None = None) -> None:
    with svc.engine.begin() as conn:
        ctx = Context(conn, SYSTEM, now or sh(2026, 1, 5, 9))
        publish.put_draft(ctx, doc["app"], doc)
        publish.publish(ctx, svc.catalog, doc["app"])


def person(svc, name: str, roles: list[str], *, teams: list[str] | None = None, email_addr: str | None = None,
           supervises: str | None = None, app: str = "complaints"):
    """A user with app roles; answers their Actor."""
    with svc.engine.begin() as conn:
        row = users.create_user(conn, name, "Passw0rd-" + name, "user", teams=teams or [],
                                app_roles={app: roles}, email=email_addr)
        if supervises:
            conn.execute(st.teams.update().where(st.teams.c.key == supervises).values(supervisor_id=row["id"]))
        return users.load_actor(conn, row["id"])


def actor_of(svc, actor):
    with svc.engine.connect() as conn:
        return users.load_actor(conn, actor.id)


class Clock:
    """Explicit time for services and the scheduler; tests advance it, nothing sleeps."""

    def __init__(self, start: datetime):
        self.now = start

    def at(self, when: datetime) -> datetime:
        self.now = when
        return when

    def advance(self, **kw) -> datetime:
        self.now = self.now + timedelta(**kw)
        return self.now


def run(svc, actor, now: datetime, fn):
    """Call ``fn(ctx)`` in one transaction at ``now`` as ``actor``."""
    with svc.engine.begin() as conn:
        return fn(Context(conn, actor, now))


def timeline(svc, app: str, entity: str, rid: int) -> list[dict]:
    from runtime import audit
    with svc.engine.connect() as conn:
        return list(reversed(audit.timeline(conn, app, entity, rid)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------- a real SMTP listener
class SmtpSink:
    """A minimal SMTP server (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) on a free local port,
    run by asyncio in a thread; ``messages`` holds what it received as ``email.message.Message``."""

    def __init__(self):
        self.messages: list = []
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpSink:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._session, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def say(line: str) -> None:
            writer.write((line + "\r\n").encode())
            await writer.drain()

        await say("220 sink ready")
        rcpt: list[str] = []
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                cmd = raw.decode("utf-8", "replace").strip()
                verb = cmd.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    await say("250 sink")
                elif verb == "MAIL":
                    rcpt = []
                    await say("250 OK")
                elif verb == "RCPT":
                    rcpt.append(cmd.split(":", 1)[1].strip(" <>"))
                    await say("250 OK")
                elif verb == "DATA":
                    await say("354 end with <CRLF>.<CRLF>")
                    lines = []
                    while True:
                        line = await reader.readline()
                        if line in (b".\r\n", b".\n", b""):
                            break
                        lines.append(line[1:] if line.startswith(b"..") else line)
                    msg = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
                    msg["X-Sink-Rcpt"] = ", ".join(rcpt)
                    self.messages.append(msg)
                    await say("250 queued")
                elif verb == "QUIT":
                    await say("221 bye")
                    break
                else:
                    await say("250 OK")
        finally:
            writer.close()


def body_text(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


# ---------------------------------------------------------------------- a local webhook endpoint
class HookSink:
    """A local HTTP endpoint answering ``status``; ``calls`` holds (headers, body bytes)."""

    def __init__(self, status: int = 200):
        self.status = status
        self.calls: list[tuple[dict, bytes]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.calls.append((dict(self.headers), body))
                self.send_response(sink.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HookSink:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def json(self, i: int) -> dict:
        return json.loads(self.calls[i][1])
