"""Public forms: a form published with ``public: {fields, set, rate_limit}`` taken from anyone.

Owns: finding a form by its token (a ``jimu_public_tokens`` row made at publish), what a
submission may carry (only the form's listed fields — anything else answers 422 — within size
limits), the honeypot (a filled one pretends success and stores nothing), the rate limit per
client address (``N/hour``: at most N accepted in any sliding hour, counted in ``jimu_rate_hits``
inside the same transaction as the record, so a refused or failed submission counts nothing),
the ``set`` values, and running the whole records pipeline as the ``public`` actor, who may create
records of that form's entity and nothing else. The page (``/f/<token>``) and HTTP are ``web``'s.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engines.errors import NotFound, RateLimited, ValidationFailed
from engines.model import Entity, Field

from . import system_tables as st
from .catalog import Catalog, CompiledApp
from .context import Actor, Context
from .permissions import PUBLIC_ROLE, public_actor
from .records import RecordsService

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
RATE_RE = re.compile(r"^\s*(\d{1,7})\s*/\s*(minute|hour|day)\s*$")
WINDOWS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
DEFAULT_RATE = "60/hour"
MAX_BODY_BYTES = 64 * 1024
MAX_TEXT = 10_000
MAX_LIST = 100
HONEYPOT = "website_url"
ANONYMOUS = Actor(id=None, name="public", role=PUBLIC_ROLE)   # before the form is known: may do nothing
NOT_FOUND = "No such form / 表单不存在"


@dataclass
class PublicForm:
    token: str
    capp: CompiledApp
    form: dict
    entity: Entity
    fields: list[Field]
    set_values: dict[str, Any]
    limit: int
    window: timedelta

    @property
    def key(self) -> str:
        return self.form["key"]

    @property
    def title(self) -> str:
        return str(self.form.get("label") or self.entity.label)

    @property
    def honeypot(self) -> str:
        return HONEYPOT if all(f.key != HONEYPOT for f in self.fields) else "_" + HONEYPOT


def parse_rate(text: Any) -> tuple[int, timedelta]:
    m = RATE_RE.match(str(text or DEFAULT_RATE))
    if m is None:
        m = RATE_RE.match(DEFAULT_RATE)
    return int(m[1]), WINDOWS[m[2]]


def load(conn: Connection, catalog: Catalog, token: Any) -> PublicForm:
    """The public form of a token; 404 for an unknown token or a form no longer public."""
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        raise NotFound(NOT_FOUND)
    t = st.public_tokens
    row = conn.execute(sa.select(t).where(t.c.token == token, t.c.kind == "form")).first()
    if row is None:
        raise NotFound(NOT_FOUND)
    capp = catalog.get(conn, row.app)
    form = capp.app.form(row.form)
    public = form.get("public") if form else None
    entity = capp.app.entity(form.get("entity", "")) if form else None
    if not isinstance(public, dict) or entity is None:
        raise NotFound(NOT_FOUND)
    fields = [entity.field(k) for k in public.get("fields") or []]
    limit, window = parse_rate(public.get("rate_limit"))
    return PublicForm(token=token, capp=capp, form=form, entity=entity, fields=[f for f in fields if f is not None],
                      set_values=dict(public.get("set") or {}), limit=limit, window=window)


def check_values(pf: PublicForm, values: Any) -> dict[str, Any]:
    """The listed fields of a submission (honeypot removed); 422 naming anything else."""
    if not isinstance(values, dict):
        raise ValidationFailed("The body must be an object of field values / 请求体必须是字段值对象",
                               {"_body": ["must be an object"]})
    allowed = {f.key for f in pf.fields}
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == pf.honeypot:
            continue
        if not isinstance(key, str) or key not in allowed:
            errors.setdefault(str(key)[:100], []).append("is not a field of this form / 表单中没有该字段")
            continue
        problem = _size_problem(value)
        if problem:
            errors.setdefault(key, []).append(problem)
            continue
        out[key] = value
    if errors:
        raise ValidationFailed("The form has errors / 表单有误", errors)
    return out


def _size_problem(value: Any) -> str | None:
    if value is None or isinstance(value, (bool, int, float)):
        return None
    if isinstance(value, str):
        return None if len(value) <= MAX_TEXT else f"is too long (at most {MAX_TEXT}) / 内容过长"
    if isinstance(value, list):
        if len(value) > MAX_LIST:
            return f"has too many values (at most {MAX_LIST}) / 值过多"
        if all(isinstance(v, (str, int, float)) and not isinstance(v, bool) and len(str(v)) <= MAX_TEXT for v in value):
            return None
        if all(isinstance(v, dict) and len(v) <= 50 for v in value):   # subtable rows
            return None
    return "has an unsupported value / 值的类型不受支持"


def honeypot_filled(pf: PublicForm, values: Any) -> bool:
    return isinstance(values, dict) and values.get(pf.honeypot) not in (None, "", [])


def _bucket(pf: PublicForm, address: str) -> str:
    return f"form:{pf.token}:{(address or 'unknown')[:100]}"


def check_rate(conn: Connection, pf: PublicForm, address: str, now) -> None:
    hits = st.rate_hits
    bucket = _bucket(pf, address)
    used = conn.execute(sa.select(sa.func.count()).select_from(hits)
                        .where(hits.c.bucket == bucket, hits.c.at > now - pf.window)).scalar_one()
    if used >= pf.limit:
        raise RateLimited("Too many submissions from your address; try again later / 提交过于频繁，请稍后再试",
                          {"limit": f"{pf.limit} per {int(pf.window.total_seconds() // 60)} minutes"})


def submit(svc: RecordsService, catalog: Catalog, ctx: Context, token: Any, values: Any, address: str) -> dict:
    """Take one submission in ``ctx``'s transaction: the record is created or nothing is stored."""
    pf = load(ctx.conn, catalog, token)
    t = st.public_tokens
    if ctx.conn.dialect.name == "postgresql":   # one submission of a form at a time: the count stays exact
        ctx.conn.execute(sa.select(t.c.token).where(t.c.token == pf.token).with_for_update())
    clean = check_values(pf, values)
    if honeypot_filled(pf, values):
        return {"ok": True, "message": THANKS}
    check_rate(ctx.conn, pf, address, ctx.now)
    body = {**clean, **pf.set_values}
    svc.create(ctx.with_actor(public_actor(pf.capp.key, pf.entity.key)), pf.capp.key, pf.entity.key, body)
    hits = st.rate_hits
    bucket = _bucket(pf, address)
    ctx.conn.execute(hits.insert().values(bucket=bucket, at=ctx.now))
    ctx.conn.execute(hits.delete().where(hits.c.bucket == bucket, hits.c.at <= ctx.now - pf.window))
    return {"ok": True, "message": THANKS}


THANKS = "Thank you, we received your submission / 感谢提交，我们已收到"


# ---------------------------------------------------------------- the page's model
INPUTS = {"text": "text", "email": "email", "phone": "tel", "url": "url", "number": "number", "decimal": "number",
          "currency": "number", "percent": "number", "rating": "number", "date": "date",
          "datetime": "datetime-local", "lookup": "number", "user": "number"}


def page_fields(pf: PublicForm, values: dict | None = None, errors: dict | None = None) -> list[dict]:
    """What the public page renders for each listed field (labels as the builder wrote them)."""
    values, errors = values or {}, errors or {}
    out = []
    for f in pf.fields:
        if f.type in ("subtable", "formula", "autonumber", "rollup"):
            continue
        widget = "textarea" if f.type == "textarea" else "select" if f.type == "select" else \
            "checkboxes" if f.type == "multiselect" else "checkbox" if f.type == "boolean" else "input"
        value = values.get(f.key)
        out.append({"key": f.key, "label": f.label, "help": f.help, "required": f.required, "widget": widget,
                    "input_type": INPUTS.get(f.type, "text"), "max_length": f.max_length,
                    "step": "any" if f.type in ("decimal", "currency", "percent", "number") else None,
                    "options": [{"value": o.value, "label": o.label} for o in f.options],
                    "value": value, "selected": value if isinstance(value, list) else [value],
                    "errors": errors.get(f.key) or []})
    return out
