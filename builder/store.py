"""The metadata store: apps, their drafts and their numbered published revisions.

A draft is the app metadata being edited; publishing (orchestrated by ``runtime.publish``) turns
it into revision n+1. Every entity and field gets a stable ``id`` here, so that a later draft that
keeps an id but changes a key is a rename. This module never touches record tables.
"""
from __future__ import annotations

import copy
import json
import secrets
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engines.errors import Conflict, NotFound

from .validation import ensure_valid

metadata = sa.MetaData()

apps_table = sa.Table(
    "jimu_apps", metadata,
    sa.Column("key", sa.String(40), primary_key=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("draft", sa.Text, nullable=False),
    sa.Column("draft_version", sa.Integer, nullable=False, default=1),
    sa.Column("published_revision", sa.Integer, nullable=False, default=0),
    sa.Column("pack_name", sa.String(40)),
    sa.Column("pack_version", sa.String(40)),
    sa.Column("pack_base", sa.Text),            # the pack's app as installed: base of 3-way upgrades
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("created_by", sa.Integer),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("updated_by", sa.Integer),
)

revisions_table = sa.Table(
    "jimu_revisions", metadata,
    sa.Column("app", sa.String(40), sa.ForeignKey("jimu_apps.key", ondelete="CASCADE"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("plan", sa.Text, nullable=False, default="{}"),
    sa.Column("message", sa.String(500)),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("created_by", sa.Integer),
)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(5)


def assign_ids(doc: dict, previous: dict | None) -> dict:
    """Give every entity and field a stable id, reusing the previous draft's ids by key."""
    doc = copy.deepcopy(doc)
    prev_entities = {e.get("key"): e for e in (previous or {}).get("entities") or [] if isinstance(e, dict)}
    for entity in doc.get("entities") or []:
        if not isinstance(entity, dict):
            continue
        old = prev_entities.get(entity.get("key")) or {}
        if not entity.get("id"):
            entity["id"] = old.get("id") or new_id("e")
        old_fields = {f.get("key"): f for f in old.get("fields") or [] if isinstance(f, dict)}
        if old.get("id") != entity["id"]:
            # the entity was renamed: match its fields against the entity of the same id
            same = next((e for e in prev_entities.values() if e.get("id") == entity["id"]), None)
            old_fields = {f.get("key"): f for f in (same or {}).get("fields") or [] if isinstance(f, dict)}
        _assign_field_ids(entity.get("fields") or [], old_fields)
    return doc


def _assign_field_ids(fields: list, old_fields: dict) -> None:
    for f in fields:
        if not isinstance(f, dict):
            continue
        old = old_fields.get(f.get("key")) or {}
        if not f.get("id"):
            f["id"] = old.get("id") or new_id("f")
        if f.get("type") == "subtable":
            _assign_field_ids(f.get("fields") or [],
                              {s.get("key"): s for s in old.get("fields") or [] if isinstance(s, dict)})


def list_apps(conn: Connection) -> list[dict]:
    rows = conn.execute(sa.select(apps_table).order_by(apps_table.c.key)).mappings()
    return [_app_summary(r) for r in rows]


def _app_summary(row) -> dict:
    draft = json.loads(row["draft"])
    return {"app": row["key"], "label": row["label"], "published_revision": row["published_revision"],
            "draft_version": row["draft_version"], "entities": [e.get("key") for e in draft.get("entities") or []],
            "pack": {"name": row["pack_name"], "version": row["pack_version"]} if row["pack_name"] else None,
            "updated_at": row["updated_at"].replace(tzinfo=UTC).isoformat()}


def app_row(conn: Connection, key: str, *, for_update: bool = False):
    q = sa.select(apps_table).where(apps_table.c.key == key)
    if for_update and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).mappings().first()
    if row is None:
        raise NotFound(f"No app {key!r} / 应用不存在", {"app": key})
    return row


def app_exists(conn: Connection, key: str) -> bool:
    return conn.execute(sa.select(apps_table.c.key).where(apps_table.c.key == key)).first() is not None


def create_app(conn: Connection, doc: Any, user_id: int | None) -> dict:
    app = ensure_valid(doc)
    if app_exists(conn, app.key):
        raise Conflict(f"An app {app.key!r} exists already / 应用已存在", {"app": app.key})
    doc = assign_ids(doc, None)
    now = _now()
    conn.execute(apps_table.insert().values(
        key=app.key, label=app.label, draft=json.dumps(doc, ensure_ascii=False), draft_version=1,
        published_revision=0, created_at=now, created_by=user_id, updated_at=now, updated_by=user_id))
    return doc


def get_draft(conn: Connection, key: str) -> dict:
    return json.loads(app_row(conn, key)["draft"])


def put_draft(conn: Connection, key: str, doc: Any, user_id: int | None) -> dict:
    row = app_row(conn, key, for_update=True)
    if isinstance(doc, dict) and doc.get("app") not in (None, key):
        from engines.errors import DefinitionError
        raise DefinitionError("The app key cannot change / 应用键不能修改",
                              [{"location": "app", "message": f"must be {key!r} / 必须是 {key!r}"}])
    if isinstance(doc, dict) and "app" not in doc:
        doc = {"app": key, **doc}
    ensure_valid(doc)
    doc = assign_ids(doc, json.loads(row["draft"]))
    conn.execute(apps_table.update().where(apps_table.c.key == key).values(
        draft=json.dumps(doc, ensure_ascii=False), label=doc.get("label") or key,
        draft_version=row["draft_version"] + 1, updated_at=_now(), updated_by=user_id))
    return doc


def latest_revision(conn: Connection, key: str) -> tuple[int, dict] | None:
    row = conn.execute(sa.select(revisions_table.c.number, revisions_table.c.metadata)
                       .where(revisions_table.c.app == key)
                       .order_by(revisions_table.c.number.desc()).limit(1)).first()
    return None if row is None else (row.number, json.loads(row.metadata))


def published_number(conn: Connection, key: str) -> int:
    row = conn.execute(sa.select(apps_table.c.published_revision).where(apps_table.c.key == key)).first()
    return 0 if row is None else row.published_revision


def get_revision(conn: Connection, key: str, number: int) -> dict:
    app_row(conn, key)
    if not 0 < number < 2**31:   # the column's range: a larger number names no revision
        raise NotFound(f"No revision {number} of {key!r} / 版本不存在", {"revision": number})
    row = conn.execute(sa.select(revisions_table).where(revisions_table.c.app == key,
                                                        revisions_table.c.number == number)).mappings().first()
    if row is None:
        raise NotFound(f"No revision {number} of {key!r} / 版本不存在", {"revision": number})
    return json.loads(row["metadata"])


def list_revisions(conn: Connection, key: str) -> list[dict]:
    app_row(conn, key)
    rows = conn.execute(sa.select(revisions_table.c.number, revisions_table.c.message, revisions_table.c.created_at,
                                  revisions_table.c.created_by, revisions_table.c.plan)
                        .where(revisions_table.c.app == key).order_by(revisions_table.c.number.desc())).mappings()
    return [{"number": r["number"], "message": r["message"], "created_by": r["created_by"],
             "created_at": r["created_at"].replace(tzinfo=UTC).isoformat(),
             "summary": json.loads(r["plan"]).get("summary")} for r in rows]


def add_revision(conn: Connection, key: str, doc: dict, user_id: int | None, plan: dict,
                 message: str | None = None) -> int:
    row = app_row(conn, key, for_update=True)
    number = (latest_revision(conn, key) or (0, None))[0] + 1
    conn.execute(revisions_table.insert().values(
        app=key, number=number, metadata=json.dumps(doc, ensure_ascii=False),
        plan=json.dumps(plan, ensure_ascii=False, default=str), message=message,
        created_at=_now(), created_by=user_id))
    conn.execute(apps_table.update().where(apps_table.c.key == key).values(
        published_revision=number, label=doc.get("label") or key, updated_at=_now(),
        draft_version=row["draft_version"]))
    return number


def set_pack(conn: Connection, key: str, name: str, version: str, base: dict) -> None:
    conn.execute(apps_table.update().where(apps_table.c.key == key).values(
        pack_name=name, pack_version=version, pack_base=json.dumps(base, ensure_ascii=False)))


def pack_info(conn: Connection, key: str) -> dict | None:
    row = app_row(conn, key)
    if not row["pack_name"]:
        return None
    return {"name": row["pack_name"], "version": row["pack_version"],
            "base": json.loads(row["pack_base"]) if row["pack_base"] else None}


def has_unpublished_changes(conn: Connection, key: str) -> bool:
    draft = get_draft(conn, key)
    latest = latest_revision(conn, key)
    return latest is None or latest[1] != draft


def delete_app(conn: Connection, key: str) -> int:
    """Remove the app's draft and every revision (an uninstall); answers the revisions removed."""
    app_row(conn, key, for_update=True)
    removed = conn.execute(revisions_table.delete().where(revisions_table.c.app == key)).rowcount
    conn.execute(apps_table.delete().where(apps_table.c.key == key))
    return removed
