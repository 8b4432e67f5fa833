"""Publishing: draft metadata -> schema migration -> a new numbered revision, in one transaction.

Also the plan a user reads before publishing (what changes, where-used warnings) and restore of an
old revision (published again as a new revision). Validation and storage are the builder's; the
DDL is ``runtime.schema_sync``'s; this module orders them.
"""
from __future__ import annotations

import secrets
from datetime import UTC

import sqlalchemy as sa

from builder import store
from builder.diff import diff_apps, where_used
from builder.validation import ensure_valid
from engines.errors import PermissionDenied

from . import audit
from . import system_tables as st
from .catalog import Catalog
from .context import Context
from .permissions import guard_permission_change
from .schema_sync import apply_plan, describe, load_physical, load_retired, plan_schema_change, summarise


def require_builder(ctx: Context) -> None:
    if not ctx.actor.can_build:
        raise PermissionDenied("Only admins and builders may change apps / 仅管理员和构建者可修改应用",
                               {"role": ctx.actor.role})


def returning_entities(conn, app_key: str, latest: tuple[int, dict] | None, doc: dict,
                       physical: dict[str, str]) -> dict[str, dict]:
    """The entities ``doc`` brings back from retirement, each as its last revision defined it."""
    current = {e.get("id") for e in (latest[1].get("entities") or [])} if latest else set()
    wanted = {e.get("id") for e in doc.get("entities") or []} & set(physical) - current
    found: dict[str, dict] = {}
    for number in range(latest[0] - 1 if latest else 0, 0, -1):
        if len(found) == len(wanted):
            break
        for entity in store.get_revision(conn, app_key, number).get("entities") or []:
            if entity.get("id") in wanted:
                found.setdefault(entity["id"], entity)
    return found


def make_plan(conn, app_key: str, doc: dict) -> dict:
    latest = store.latest_revision(conn, app_key)
    old = latest[1] if latest else None
    physical = load_physical(conn, app_key)
    ops = plan_schema_change(app_key, old, doc, physical, load_retired(conn, app_key),
                             returning_entities(conn, app_key, latest, doc, physical))
    diff = diff_apps(old, doc)
    warnings = []
    for change in diff["entities"]["changed"]:
        for kind in ("renamed", "retired", "retyped"):
            for f in change["fields"][kind]:
                key = f.get("from") or f.get("key")
                uses = where_used(old or {}, change["key"], key)
                if uses:
                    warnings.append({"field": f"{change['key']}.{key}", "change": kind, "used_in": uses})
    counts = summarise(ops)
    summary = {
        "tables_created": counts.get("create_table", 0), "columns_added": counts.get("add_column", 0),
        "columns_renamed": counts.get("rename_column", 0), "columns_retired": counts.get("retire_column", 0),
        "columns_restored": counts.get("restore_column", 0), "columns_retyped": counts.get("alter_type", 0),
        "entities_retired": counts.get("retire_table", 0),
    }
    return {"from_revision": latest[0] if latest else 0, "operations": ops,
            "steps": [describe(o) for o in ops if o["op"] not in ("create_index", "drop_index", "park_column")],
            "summary": summary, "diff": diff, "where_used": warnings}


def plan_draft(ctx: Context, app_key: str) -> dict:
    require_builder(ctx)
    doc = store.get_draft(ctx.conn, app_key)
    ensure_valid(doc)
    plan = make_plan(ctx.conn, app_key, doc)
    return {k: v for k, v in plan.items() if k != "operations"}


def publish(ctx: Context, catalog: Catalog, app_key: str, *, message: str | None = None,
            doc: dict | None = None) -> dict:
    """Publish the draft (or ``doc``) as the next revision; answers the plan it applied."""
    require_builder(ctx)
    store.app_row(ctx.conn, app_key, for_update=True)
    if doc is None:
        doc = store.get_draft(ctx.conn, app_key)
    ensure_valid(doc)
    latest = store.latest_revision(ctx.conn, app_key)
    guard_permission_change(ctx.conn, ctx.actor, ctx.now, app_key, latest[1] if latest else None, doc)
    plan = make_plan(ctx.conn, app_key, doc)
    apply_plan(ctx.conn, app_key, plan["operations"], doc)
    public_plan = {k: v for k, v in plan.items() if k != "operations"}
    number = store.add_revision(ctx.conn, app_key, doc, ctx.actor.id, public_plan, message)
    tokens = ensure_public_tokens(ctx, app_key, doc)
    audit.write(ctx.conn, at=ctx.now, user_id=ctx.actor.id, action="metadata", app=app_key,
                summary=f"published revision {number}", details={"summary": plan["summary"], "diff": plan["diff"]})
    catalog.forget(app_key)
    return {"app": app_key, "revision": number, **public_plan, "public_forms": tokens}


def ensure_public_tokens(ctx: Context, app_key: str, doc: dict) -> dict[str, str]:
    t = st.public_tokens
    existing = {r.form: r.token for r in ctx.conn.execute(
        sa.select(t.c.form, t.c.token).where(t.c.app == app_key, t.c.kind == "form"))}
    out = {}
    for form in doc.get("forms") or []:
        if not isinstance(form.get("public"), dict):
            continue
        key = form["key"]
        if key not in existing:
            token = secrets.token_urlsafe(18)
            ctx.conn.execute(t.insert().values(token=token, kind="form", app=app_key, form=key, payload="{}",
                                               created_at=ctx.now.astimezone(UTC)))
            existing[key] = token
        out[key] = existing[key]
    return out


def public_form_tokens(conn, app_key: str) -> dict[str, str]:
    t = st.public_tokens
    return {r.form: r.token for r in conn.execute(sa.select(t.c.form, t.c.token)
                                                  .where(t.c.app == app_key, t.c.kind == "form"))}


def restore(ctx: Context, catalog: Catalog, app_key: str, number: int) -> dict:
    """Publish revision ``number``'s metadata again, as a new revision; the draft follows."""
    require_builder(ctx)
    doc = store.get_revision(ctx.conn, app_key, number)
    result = publish(ctx, catalog, app_key, message=f"restore of revision {number}", doc=doc)
    store.put_draft(ctx.conn, app_key, doc, ctx.actor.id)
    return result


def create_app(ctx: Context, doc) -> dict:
    require_builder(ctx)
    out = store.create_app(ctx.conn, doc, ctx.actor.id)
    audit.write(ctx.conn, at=ctx.now, user_id=ctx.actor.id, action="metadata", app=out["app"],
                summary="created app")
    return out


def put_draft(ctx: Context, app_key: str, doc) -> dict:
    require_builder(ctx)
    before = store.get_draft(ctx.conn, app_key)
    out = store.put_draft(ctx.conn, app_key, doc, ctx.actor.id)
    audit.write(ctx.conn, at=ctx.now, user_id=ctx.actor.id, action="metadata", app=app_key,
                summary="changed draft", details={"diff": diff_apps(before, out)})
    return out
