"""Removing an app's run-time footprint: what an uninstall would remove, counted, and the removal.

Owns the list of what belongs to an app at run time: its record tables (live, retired and
subtables) with their row counts, and the rows of every runtime table that carries the app's key
(timers, tasks and approvals, flow instances, outbox items not yet sent, shares, saved views,
public form and survey tokens, notifications, app-role grants, physical names, retired-column
markers, and any table added later with an ``app`` column), plus its counters (autonumbers, round
robin, schedule markers) and the rate-limit hits of its public forms; the metadata store's rows go
through ``builder.store``. The audit log is append-only: it is never touched here, and neither are
delivered (or dead) outbox items, which are the delivery log.

``removal_plan`` counts and writes nothing; ``lock_app`` keeps writers out of the app's tables until
the caller's transaction ends; ``remove_app`` removes everything inside the caller's transaction
(admins only). Exporting the data first is ``templates_library.uninstall``'s job.
"""
from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from builder import store
from engines.errors import PermissionDenied

from . import system_tables as st
from .context import Context

KEPT = frozenset({st.audit.name})                       # append-only: outlives the app
UNSENT = ("pending", "failed", "sending")               # outbox items that would still be delivered


def require_admin(ctx: Context) -> None:
    if not ctx.actor.is_admin:
        raise PermissionDenied("Only platform admins may uninstall an app / 仅平台管理员可卸载应用",
                               {"role": ctx.actor.role})


# ---------------------------------------------------------------------- what belongs to the app
def _documents(conn: Connection, app_key: str) -> list[dict]:
    """Every metadata document the app ever had (its revisions and its draft), newest first."""
    rt = store.revisions_table
    docs = [json.loads(r.metadata) for r in conn.execute(
        sa.select(rt.c.metadata).where(rt.c.app == app_key).order_by(rt.c.number.desc()))]
    return [store.get_draft(conn, app_key), *docs]


def _names(docs: list[dict]) -> dict[str, Any]:
    """Keys and ids the app's counters are named after, and owner id -> what it is."""
    owners: dict[str, str] = {}
    counters: set[str] = set()
    entity_keys: set[str] = set()
    rule_keys: set[str] = set()
    for doc in docs:
        for e in doc.get("entities") or []:
            entity_keys.add(e.get("key"))
            owners.setdefault(e.get("id"), e.get("key"))
            for f in e.get("fields") or []:
                counters.add(f"{e.get('id')}:{f.get('id')}:")
                if f.get("type") == "subtable":
                    owners.setdefault(f.get("id"), f"{e.get('key')}.{f.get('key')}")
        rule_keys.update(r.get("key") for r in doc.get("rules") or [] if isinstance(r, dict))
    return {"owners": owners, "autonumbers": counters, "entities": entity_keys - {None},
            "rules": rule_keys - {None}}


def _counter_clause(app_key: str, names: dict) -> Any:
    name = st.counters.c.name
    prefixes = [f"{app_key}:{p}" for p in sorted(names["autonumbers"])]
    prefixes += [f"rr:{app_key}:{e}:" for e in sorted(names["entities"])]
    exact = [f"sched:{app_key}:{r}"[:200] for r in sorted(names["rules"])]
    clauses = [name.startswith(p[:200], autoescape=True) for p in prefixes]
    if exact:
        clauses.append(name.in_(exact))
    return sa.or_(*clauses) if clauses else sa.false()


def _form_tokens(conn: Connection, app_key: str) -> list[str]:
    t = st.public_tokens
    return [r.token for r in conn.execute(sa.select(t.c.token).where(t.c.app == app_key, t.c.kind == "form"))]


def _scoped(conn: Connection, app_key: str, names: dict) -> list[tuple[str, sa.Table, Any]]:
    """(label, table, where) of every runtime row that belongs to the app."""
    out: list[tuple[str, sa.Table, Any]] = []
    for table in st.metadata.sorted_tables:
        if "app" not in table.c or table.name in KEPT or table.name == st.physical_tables.name:
            continue
        label = table.name.removeprefix("jimu_")
        mine = table.c.app == app_key
        if table is st.outbox:
            out.append(("outbox_unsent", table, sa.and_(mine, table.c.status.in_(UNSENT))))
        elif table is st.tasks:
            out.append(("tasks", table, sa.and_(mine, table.c.kind != "approval")))
            out.append(("approvals", table, sa.and_(mine, table.c.kind == "approval")))
        else:
            out.append((label, table, mine))
    buckets = [st.rate_hits.c.bucket.startswith(f"form:{t}:", autoescape=True) for t in _form_tokens(conn, app_key)]
    out.append(("rate_hits", st.rate_hits, sa.or_(*buckets) if buckets else sa.false()))
    out.append(("counters", st.counters, _counter_clause(app_key, names)))
    # the physical names last: the tables are found through them
    out.append(("tables", st.physical_tables, st.physical_tables.c.app == app_key))
    return out


def _count(conn: Connection, table, where=None) -> int:
    q = sa.select(sa.func.count()).select_from(table)
    return int(conn.execute(q if where is None else q.where(where)).scalar_one())


def record_tables(conn: Connection, app_key: str, owners: dict[str, str] | None = None) -> list[dict]:
    """The app's physical record tables with what they hold: entity (or ``entity.field`` for a
    subtable), kind, retired, rows."""
    if owners is None:
        owners = _names(_documents(conn, app_key))["owners"]
    pt = st.physical_tables
    rows = conn.execute(sa.select(pt).where(pt.c.app == app_key).order_by(pt.c.table_name)).mappings().all()
    present = set(sa.inspect(conn).get_table_names())
    out = []
    for r in rows:
        name = r["table_name"]
        out.append({"table": name, "entity": owners.get(r["owner_id"], r["owner_id"]), "kind": r["kind"],
                    "retired": bool(r["retired"]),
                    "rows": _count(conn, sa.table(name)) if name in present else 0})
    return out


def removal_plan(conn: Connection, app_key: str) -> dict:
    """What removing the app would remove, counted; writes nothing. ``NotFound`` for no such app."""
    row = store.app_row(conn, app_key)
    docs = _documents(conn, app_key)
    names = _names(docs)
    latest = store.latest_revision(conn, app_key)
    tables = record_tables(conn, app_key, names["owners"])
    rows = {label: _count(conn, table, where) for label, table, where in _scoped(conn, app_key, names)}
    rows["tables"] = len(tables)
    return {
        "app": app_key, "label": row["label"],
        "pack": {"name": row["pack_name"], "version": row["pack_version"]} if row["pack_name"] else None,
        "metadata": {"revisions": len(docs) - 1, "published_revision": row["published_revision"],
                     "draft_unpublished": latest is None or latest[1] != docs[0]},
        "tables": tables,
        "records": {t["entity"]: t["rows"] for t in tables if t["kind"] == "entity" and not t["retired"]},
        "rows": rows,
        "kept": {"audit_entries": _count(conn, st.audit, st.audit.c.app == app_key),
                 "outbox_delivered": _count(conn, st.outbox, sa.and_(st.outbox.c.app == app_key,
                                                                     st.outbox.c.status.not_in(UNSENT)))},
    }


# ---------------------------------------------------------------------- removing
def lock_app(conn: Connection, app_key: str) -> None:
    """Hold the app's row, and keep writers out of its record tables, until the transaction ends
    (SQLite: ``BEGIN IMMEDIATE`` made this transaction the only writer already)."""
    store.app_row(conn, app_key, for_update=True)
    if conn.dialect.name != "postgresql":
        return
    quote = conn.dialect.identifier_preparer.quote
    present = set(sa.inspect(conn).get_table_names())
    pt = st.physical_tables
    for (name,) in conn.execute(sa.select(pt.c.table_name).where(pt.c.app == app_key).order_by(pt.c.table_name)):
        if name in present:
            # a generated table name (never user text), quoted by the dialect
            conn.execute(sa.text(f"LOCK TABLE {quote(name)} IN SHARE ROW EXCLUSIVE MODE"))


def drop_record_tables(conn: Connection, names: list[str]) -> None:
    """Drop the tables, those that others point at (lookups, subtables) after them."""
    present = set(sa.inspect(conn).get_table_names())
    names = [n for n in names if n in present]
    if not names:
        return
    md = sa.MetaData()
    md.reflect(conn, only=names)
    md.drop_all(conn, tables=[md.tables[n] for n in names])


def remove_app(ctx: Context, app_key: str) -> dict:
    """Remove the app (metadata, record tables, every runtime row of it; never the audit log)
    inside the caller's transaction. Answers the rows removed, by kind."""
    require_admin(ctx)
    conn = ctx.conn
    store.app_row(conn, app_key, for_update=True)
    names = _names(_documents(conn, app_key))
    tables = [r.table_name for r in conn.execute(sa.select(st.physical_tables.c.table_name)
                                                 .where(st.physical_tables.c.app == app_key))]
    removed: dict[str, int] = {}
    for label, table, where in _scoped(conn, app_key, names):
        if label == "tables":
            drop_record_tables(conn, tables)
            removed["tables"] = len(tables)
        n = conn.execute(table.delete().where(where)).rowcount
        if label != "tables":
            removed[label] = n
    removed["revisions"] = store.delete_app(conn, app_key)
    return removed
