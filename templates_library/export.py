"""Exporting an installed app as a template pack: the latest published revision's metadata,
without the ids the store assigned, and optionally its records as sample data.

Export → import into a fresh database → export gives the identical pack. With data, the records
become CSV rows in load order (targets of lookups first, lookups as row numbers, a row after the
rows of its own entity that it points at); the fields the engines set are left out, as a pack's sample data never carries them. Writing the pack to a folder
or a zip is ``templates_library.loader.dump_pack``'s job; installing is ``templates_library.install``'s.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from builder import store
from engines.errors import Conflict
from runtime.catalog import Catalog
from runtime.record_values import to_wire

from .loader import Pack
from .sample_data import cell_text, engine_set_fields, load_order


def strip_ids(value: Any) -> Any:
    """Metadata without the ids the store assigned (entities and fields)."""
    if isinstance(value, dict):
        return {k: strip_ids(v) for k, v in value.items() if k != "id"}
    if isinstance(value, list):
        return [strip_ids(v) for v in value]
    return value


def export_app(conn: Connection, app_key: str, *, with_data: bool = False,
               default_tz: str = "Asia/Shanghai") -> Pack:
    """The latest published revision of ``app_key`` as a pack (metadata only unless ``with_data``)."""
    latest = store.latest_revision(conn, app_key)
    row = store.app_row(conn, app_key)
    if latest is None:
        raise Conflict(f"App {app_key!r} has no published revision to export / 应用尚未发布，无法导出",
                       {"app": app_key})
    doc = strip_ids(latest[1])
    sample: dict[str, list[dict[str, str]]] = {}
    if with_data:
        sample = _export_rows(conn, app_key, latest[0], default_tz)
    return Pack(name=row["pack_name"] or app_key, version=row["pack_version"] or "1.0.0", format_version=1,
                title=(doc.get("label") or app_key)[:200], description="", requires={"jimu": ">=0.1"},
                app=doc, sample_data=sample, source=f"app:{app_key}",
                sample_files={e: f"data/{e}.csv" for e in sample})


def _export_rows(conn: Connection, app_key: str, number: int, default_tz: str) -> dict[str, list[dict]]:
    capp = Catalog(default_tz).load(conn, app_key, number)
    app = capp.app
    out: dict[str, list[dict]] = {}
    row_of: dict[str, dict[int, int]] = {}
    for entity_key in load_order(app):
        entity = app.entity(entity_key)
        banned = engine_set_fields(app, entity)
        table = capp.tables[entity_key]
        rows = [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]
        subs = [f for f in entity.fields if f.type == "subtable"]
        for f in subs:
            t = capp.subtables[(entity_key, f.key)]
            by_parent: dict[int, list] = {}
            for r in conn.execute(sa.select(t).order_by(t.c.parent_id, t.c._pos)).mappings():
                by_parent.setdefault(r["parent_id"], []).append(dict(r))
            for r in rows:
                r[f.key] = by_parent.get(r["id"], [])
        columns = [f for f in entity.fields if f.key not in banned
                   and (f.type != "lookup" or f.target in out or f.target == entity_key)]
        self_keys = [f.key for f in columns if f.type == "lookup" and f.target == entity_key]
        cells_of: dict[int, dict] = {}
        kept = []
        for r in self_ordered(rows, self_keys):
            wire = r["_wire"] = to_wire(capp, entity, r)
            cells = {}
            for f in columns:
                value = wire.get(f.key)
                if f.type == "lookup" and f.target != entity_key and value is not None:
                    value = row_of[f.target].get(value)
                cells[f.key] = "" if f.key in self_keys else cell_text(f, value)
            # a row without a value is no CSV row (a reader skips it): it is left out, not numbered
            if any(cells.values()) or any(wire.get(k) is not None for k in self_keys):
                cells_of[r["id"]] = cells
                kept.append(r)
        numbers = {r["id"]: n for n, r in enumerate(kept, 1)}
        row_of[entity_key] = numbers
        csv_rows = []
        for r in kept:
            cells = cells_of[r["id"]]
            for key in self_keys:
                value = numbers.get(r["_wire"].get(key))
                if value is not None and value >= numbers[r["id"]]:
                    value = None    # only in a cycle of self-references: it cannot load in order
                cells[key] = "" if value is None else str(value)
            csv_rows.append(cells)
        if csv_rows:
            out[entity_key] = csv_rows
    return out


def self_ordered(rows: list[dict], keys: list[str]) -> list[dict]:
    """The rows in id order, except that a row comes after the rows it points at through a lookup
    to its own entity (``keys``), so that the data loads in order; a cycle keeps id order."""
    if not keys:
        return rows
    by_id = {r["id"]: r for r in rows}

    def refs(r: dict):
        return iter([r[k] for k in keys if r.get(k) is not None and r[k] != r["id"] and r[k] in by_id])

    placed: set = set()
    out: list[dict] = []
    for first in rows:
        if first["id"] in placed:
            continue
        stack = [(first, refs(first))]
        on_stack = {first["id"]}
        while stack:                          # depth first, without recursion: chains may be long
            row, pending = stack[-1]
            nxt = next((i for i in pending if i not in placed and i not in on_stack), None)
            if nxt is None:
                stack.pop()
                on_stack.discard(row["id"])
                placed.add(row["id"])
                out.append(row)
            else:
                on_stack.add(nxt)
                stack.append((by_id[nxt], refs(by_id[nxt])))
    return out
