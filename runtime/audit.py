"""The append-only audit log, which is also every record's timeline.

Writers add entries inside the caller's transaction (so an entry exists exactly when its change
does); readers answer the audit list (admins) and a record's timeline (newest first).
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import system_tables as st
from .bulk_insert import insert_many
from .ids import MAX_ID

_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)   # built once: json.dumps(**kw) builds one per call


def _dump(value: Any) -> str | None:
    return None if value is None else _ENCODER.encode(value)


def entry(*, at: datetime, user_id: int | None, action: str, app: str | None = None, entity: str | None = None,
          record_id: int | None = None, summary: str | None = None, before: Any = None, after: Any = None,
          details: Any = None) -> dict:
    return {"at": at, "user_id": user_id, "action": action, "app": app, "entity": entity,
            "record_id": record_id, "summary": (summary or "")[:500], "before": _dump(before),
            "after": _dump(after), "details": _dump(details)}


def create_entries(*, at: datetime, user_id: int | None, app: str, entity: str,
                   items: list[tuple[int, str, Any, Any]]) -> list[dict]:
    """Entries of a batch of creates, from (record id, summary, after, details) each: ``entry``
    without its per-call keyword handling, for the bulk paths."""
    base = {"at": at, "user_id": user_id, "action": "create", "app": app, "entity": entity, "before": None}
    encode = _ENCODER.encode
    return [{**base, "record_id": rid, "summary": (summary or "")[:500],
             "after": None if after is None else encode(after),
             "details": None if details is None else encode(details)} for rid, summary, after, details in items]


def write(conn: Connection, **kw) -> None:
    conn.execute(st.audit.insert().values(**entry(**kw)))


def write_many(conn: Connection, entries: list[dict]) -> None:
    insert_many(conn, st.audit, entries)


def _load(text):
    return None if text is None else json.loads(text)


def _user_names(conn: Connection, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = conn.execute(sa.select(st.users.c.id, st.users.c.name).where(st.users.c.id.in_(sorted(ids))))
    return {r.id: r.name for r in rows}


def timeline(conn: Connection, app: str, entity: str, record_id: int, *, limit: int = 200,
             hidden: frozenset[str] = frozenset()) -> list[dict]:
    rows = conn.execute(sa.select(st.audit).where(st.audit.c.app == app, st.audit.c.entity == entity,
                                                  st.audit.c.record_id == record_id)
                        .order_by(st.audit.c.id.desc()).limit(limit)).mappings().all()
    names = _user_names(conn, {r["user_id"] for r in rows if r["user_id"]})
    items = []
    for r in rows:
        details = _load(r["details"]) or {}
        before, after = _load(r["before"]), _load(r["after"])
        summary = r["summary"]
        if hidden:
            before = _strip(before, hidden)
            after = _strip(after, hidden)
            details = _strip(details, hidden)
            summary = _strip_summary(summary, hidden)
        if before is not None or after is not None:
            details = {**(details if isinstance(details, dict) else {"value": details}),
                       "before": before, "after": after}
        items.append({"at": r["at"].isoformat(), "by": names.get(r["user_id"]), "by_id": r["user_id"],
                      "kind": r["action"], "summary": summary, "details": details})
    return items


_DROP = object()


def _is_hidden(name: str, hidden) -> bool:
    return name in hidden or name.split(".", 1)[0] in hidden


def _strip(obj, hidden):
    """``obj`` without what names a hidden field, at any depth: its keys (values, rule inputs) and
    the rule traces that compute or check it."""
    out = _scrub(obj, hidden)
    return None if out is _DROP else out


def _scrub(obj, hidden):
    if isinstance(obj, dict):
        if any(isinstance(obj.get(k), str) and _is_hidden(obj[k], hidden) for k in ("target", "field")):
            return _DROP
        out = {}
        for k, v in obj.items():
            if isinstance(k, str) and _is_hidden(k, hidden):
                continue
            v = _scrub(v, hidden)
            if v is not _DROP:
                out[k] = v
        return out
    if isinstance(obj, list):
        return [x for x in (_scrub(v, hidden) for v in obj) if x is not _DROP]
    return obj


def _strip_summary(summary: str | None, hidden) -> str | None:
    """"changed a, b" without the hidden names."""
    if not summary or not summary.startswith("changed "):
        return summary
    names = summary[len("changed "):].split(", ")
    if not any(_is_hidden(n, hidden) for n in names):
        return summary
    kept = [n for n in names if not _is_hidden(n, hidden)]
    return "changed " + (", ".join(kept) if kept else "fields you cannot see / 不可见字段")


def query(conn: Connection, *, app: str | None = None, entity: str | None = None, record: int | None = None,
          user: int | None = None, since: datetime | None = None, action: str | None = None,
          limit: int = 100, before_id: int | None = None) -> list[dict]:
    # ids come from query strings: one that no row can have must not reach the driver
    if before_id is not None and before_id > MAX_ID:
        before_id = None                      # every row comes before it
    if any(v is not None and not 0 < v <= MAX_ID for v in (record, user, before_id)):
        return []                             # no row has such an id
    if since is not None:
        try:
            since = since.astimezone(UTC)
        except OverflowError:                 # off the calendar in UTC (0001-01-01 at +08:00, 9999-12-31 at -05:00)
            if since.year > 1:
                return []                     # nothing was written after the end of time
            since = None                      # everything was written after its start
    q = sa.select(st.audit)
    for col, val in ((st.audit.c.app, app), (st.audit.c.entity, entity), (st.audit.c.record_id, record),
                     (st.audit.c.user_id, user), (st.audit.c.action, action)):
        if val is not None:
            q = q.where(col == val)
    if since is not None:
        q = q.where(st.audit.c.at >= since)
    if before_id is not None:
        q = q.where(st.audit.c.id < before_id)
    rows = conn.execute(q.order_by(st.audit.c.id.desc()).limit(limit)).mappings().all()
    names = _user_names(conn, {r["user_id"] for r in rows if r["user_id"]})
    return [{"id": r["id"], "at": r["at"].astimezone(UTC).isoformat(), "user": names.get(r["user_id"]),
             "user_id": r["user_id"], "action": r["action"], "app": r["app"], "entity": r["entity"],
             "record": r["record_id"], "summary": r["summary"], "before": _load(r["before"]),
             "after": _load(r["after"]), "details": _load(r["details"])} for r in rows]
