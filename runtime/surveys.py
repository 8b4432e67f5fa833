"""Satisfaction surveys: tokenised public links that work once and expire, and their answers.

Owns the survey token (a ``jimu_public_tokens`` row of kind ``survey``: the form, the record it
is about, what to do with the answer), opening a survey for its public page (``open_survey``) and
taking the answer (``answer``): the answer is a record of the survey form's entity created through
the records pipeline, linked to the surveyed record by its lookup field, and the token is spent in
the same transaction. When the survey action said how to tell a satisfied answer (``satisfied``:
an expression over the answer), the surveyed record may move on: ``on_satisfied`` (default
``close``) or ``on_unsatisfied`` (default ``reopen``), when the flow allows that transition now.

The page itself (``/s/<token>``) is served by ``web``.
"""
from __future__ import annotations

import json
import os
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engines import expressions as ex
from engines.errors import Conflict, JimuError, NotFound, TransitionNotAllowed, ValidationFailed
from engines.field_types import REGISTRY

from . import audit
from . import system_tables as st
from .context import Actor, Context

TTL = timedelta(days=14)
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
SURVEY_ACTOR = Actor(id=None, name="survey", role="system")


def link(token: str) -> str:
    base = (os.environ.get("JIMU_BASE_URL") or "http://localhost:5000").rstrip("/")
    return f"{base}/s/{token}"


def _link_field(capp, survey_entity: str, target: str):
    entity = capp.entity(survey_entity)
    return next((f for f in entity.fields if f.type == "lookup" and f.target == target), None)


def form_fields(capp, form: dict, skip: str | None = None) -> list:
    """The fields a survey form asks, in layout order (the link to the record is set, not asked)."""
    entity = capp.entity(form["entity"])
    keys = [k for section in form.get("layout") or [] for k in section.get("fields") or []]
    if not keys:
        keys = [f.key for f in entity.fields]
    out = []
    for key in dict.fromkeys(keys):
        f = entity.field(key)
        if f is not None and f.key != skip and not REGISTRY[f.type].computed and f.type != "subtable":
            out.append(f)
    return out


def create_token(conn: Connection, capp, form_key: str, entity_key: str, record_id: int, now: datetime, *,
                 options: dict | None = None, ttl: timedelta = TTL) -> tuple[str, datetime]:
    form = capp.app.form(form_key)
    if form is None:
        raise JimuError(f"No form {form_key!r} in app {capp.key!r} / 表单不存在", {"form": form_key},
                        code="action_failed", status=422)
    lf = _link_field(capp, form["entity"], entity_key)
    if lf is None:
        raise JimuError(f"The entity of form {form_key!r} has no lookup to {entity_key!r} / 调查表单的实体没有关联到 "
                        f"{entity_key}", {"form": form_key}, code="action_failed", status=422)
    options = options or {}
    payload = {"entity": entity_key, "record_id": record_id, "link_field": lf.key, "survey_entity": form["entity"]}
    if options.get("satisfied"):
        payload.update(satisfied=options["satisfied"], on_satisfied=options.get("on_satisfied", "close"),
                       on_unsatisfied=options.get("on_unsatisfied", "reopen"))
    token = secrets.token_urlsafe(24)
    expires = now.astimezone(UTC) + ttl
    conn.execute(st.public_tokens.insert().values(
        token=token, kind="survey", app=capp.key, form=form_key, payload=json.dumps(payload, ensure_ascii=False),
        created_at=now.astimezone(UTC), expires_at=expires))
    return token, expires.astimezone(capp.tz)


def _load(conn: Connection, token: Any, now: datetime) -> dict:
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        raise NotFound("No such survey / 调查不存在", {"token": "malformed"})
    t = st.public_tokens
    row = conn.execute(sa.select(t).where(t.c.token == token, t.c.kind == "survey")).mappings().first()
    if row is None:
        raise NotFound("No such survey / 调查不存在", {"token": "unknown"})
    if row["used_at"] is not None:
        raise Conflict("This survey was already answered: thank you / 该调查已提交，感谢您的反馈",
                       {"token": "used"})
    if row["expires_at"] is not None and row["expires_at"] <= now.astimezone(UTC):
        raise JimuError("This survey link has expired / 该调查链接已过期", {"token": "expired"},
                        code="gone", status=410)
    return {**row, "payload": json.loads(row["payload"] or "{}")}


def open_survey(ctx: Context, catalog, token: Any) -> dict:
    """What the public page shows: the form's fields and the record it is about (title only)."""
    row = _load(ctx.conn, token, ctx.now)
    capp = catalog.get(ctx.conn, row["app"])
    form = capp.app.form(row["form"])
    if form is None:
        raise NotFound("No such survey / 调查不存在", {"form": row["form"]})
    p = row["payload"]
    about = capp.entity(p["entity"])
    target = capp.tables[p["entity"]]
    record = ctx.conn.execute(sa.select(target).where(target.c.id == p["record_id"])).mappings().first()
    title = None
    if record is not None:
        from .record_values import title_of
        title = title_of(about, dict(record))
    return {"app": capp.app, "form": form, "fields": form_fields(capp, form, skip=p["link_field"]),
            "about": {"entity": about.label, "title": title},
            "expires_at": row["expires_at"].astimezone(capp.tz) if row["expires_at"] else None}


def answer(ctx: Context, records, token: Any, body: Any) -> dict:
    """Store the answer as a record, spend the token, and follow up on the surveyed record."""
    conn, now = ctx.conn, ctx.now
    row = _load(conn, token, now)
    p = row["payload"]
    capp = records.app(ctx, row["app"])
    form = capp.app.form(row["form"])
    if not isinstance(body, dict):
        raise ValidationFailed("The answer must be an object / 提交内容格式错误", {"_body": ["must be an object"]})
    allowed = {f.key for f in form_fields(capp, form, skip=p["link_field"])}
    unknown = sorted(k for k in body if k not in allowed)
    if unknown:
        raise ValidationFailed(f"Not a question of this survey: {', '.join(unknown)} / 不是本调查的问题",
                               {k: ["not in this survey / 不在本调查中"] for k in unknown})
    t = st.public_tokens
    spent = conn.execute(t.update().where(t.c.token == token, t.c.used_at.is_(None)).values(used_at=now.astimezone(UTC)))
    if spent.rowcount != 1:
        raise Conflict("This survey was already answered: thank you / 该调查已提交，感谢您的反馈", {"token": "used"})
    target = capp.tables[p["entity"]]
    about = conn.execute(sa.select(target.c.id, target.c.owner).where(target.c.id == p["record_id"])).first()
    if about is None:
        raise NotFound("The record this survey is about no longer exists / 调查对应的记录已不存在")
    sctx = Context(conn, SURVEY_ACTOR, now)
    values = {**body, p["link_field"]: p["record_id"]}
    if about.owner is not None:
        values["owner"] = about.owner
    created = records.create(sctx, capp.key, p["survey_entity"], values)
    audit.write(conn, at=now, user_id=None, action="survey", app=capp.key, entity=p["entity"],
                record_id=p["record_id"], summary=f"survey answered ({form.get('label') or form['key']}) / 客户已提交满意度调查",
                details={"survey": {"entity": p["survey_entity"], "id": created["id"]},
                         "answer": {k: created.get(k) for k in allowed}})
    outcome = _follow_up(sctx, records, capp, p, created)
    return {"record": created, "follow_up": outcome}


def _follow_up(ctx: Context, records, capp, p: dict, created: dict) -> dict | None:
    if not p.get("satisfied"):
        return None
    compiled = capp.compile(p["satisfied"], p["survey_entity"], expect=ex.BOOL)
    stored = records.load_row(ctx, capp, p["survey_entity"], created["id"])
    try:
        happy = compiled.evaluate(stored, ex.EvalContext(now=ctx.now, tz=capp.tz)) is True
    except ex.EvalError:
        happy = False
    step = p.get("on_satisfied") if happy else p.get("on_unsatisfied")
    if not step:
        return {"satisfied": happy}
    key = step.get("transition") if isinstance(step, dict) else step
    values = step.get("values") if isinstance(step, dict) else None
    from .flows_runtime import FlowService
    try:
        FlowService(records).transition_system(ctx, capp, p["entity"], p["record_id"], key, values=values,
                                               comment="survey answer / 客户满意度调查结果")
    except TransitionNotAllowed as exc:
        return {"satisfied": happy, "transition": key, "skipped": exc.message}
    return {"satisfied": happy, "transition": key}
