"""Helpers for the uninstall tests: installing packs, a whole-database snapshot, and the records of
an app as comparable values (lookups resolved to their target's title)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from runtime.context import SYSTEM, Context
from templates_library.install import builtin_pack_path, import_pack
from templates_library.loader import load_pack

from .pack_helpers import pack_files, write_folder

NOW = datetime(2026, 3, 16, 10, 0, tzinfo=timezone(timedelta(hours=8)))


def install(svc, source, *, sample: bool = True) -> dict:
    """Install a built-in pack (by name) or a pack folder/zip, with its sample data."""
    path = builtin_pack_path(source) if isinstance(source, str) else source
    with svc.engine.begin() as conn:
        return import_pack(Context(conn, SYSTEM, NOW), svc, load_pack(path, now=NOW), with_sample_data=sample)


def install_helpdesk(svc, tmp_path: Path) -> dict:
    """The small help-desk pack of ``pack_helpers`` (two entities, a lookup, round-robin routing)."""
    return install(svc, write_folder(tmp_path / "helpdesk_pack", pack_files()))


def snapshot(engine) -> dict[str, list[str]]:
    """Every table of the database with every row, as text: equal snapshots, nothing changed."""
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        for name in sorted(inspector.get_table_names()):
            cols = [c["name"] for c in inspector.get_columns(name)]
            table = sa.table(name, *[sa.column(c) for c in cols])
            out[name] = sorted(repr(tuple(r)) for r in conn.execute(sa.select(table)))
    return out


def record_values(svc, app_key: str) -> dict[str, list[dict]]:
    """Every record of the app by entity, field keys only (no ids or system fields), lookups as
    ``{"title": …}`` of their target, sorted: what must come back after an uninstall and a re-import."""
    with svc.engine.connect() as conn:
        ctx = Context(conn, SYSTEM)
        capp = svc.catalog.get(conn, app_key)
        entities = capp.app.entities
        records = {e.key: list(svc.records.iter_rows(ctx, app_key, e.key)) for e in entities}
    titles = {e.key: {r["id"]: r.get(e.title_field) for r in records[e.key]} for e in entities}
    out: dict[str, list[dict]] = {}
    for e in entities:
        rows = []
        for r in records[e.key]:
            values = {}
            for f in e.fields:
                value = r.get(f.key)
                if f.type == "lookup" and value is not None:
                    value = {"title": titles[f.target][value]}
                elif f.type == "subtable" and value:
                    value = [{k: v for k, v in row.items() if k != "id"} for row in value]
                values[f.key] = value
            rows.append(values)
        out[e.key] = sorted(rows, key=lambda v: json.dumps(v, ensure_ascii=False, sort_keys=True, default=str))
    return out


def app_rows(engine, app_key: str) -> dict[str, int]:
    """Rows that carry the app's key, by runtime table (the audit log included)."""
    from runtime import system_tables as st
    with engine.connect() as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.app == app_key)).scalar_one()
                for t in st.metadata.sorted_tables if "app" in t.c}
