"""An app's full export: the app as a pack with every record as sample data, plus ``archive/``.

A pack's sample data carries what an import can create again through the records pipeline. What
the engines set (flow states, autonumbers, owners, user fields, formulas, timestamps), retired
fields and entities, and lookups that cannot load in order are not in it. So the full export —
what an uninstall keeps and what ``GET /apps/{app}/export?with_data=1`` downloads — also holds
``archive/``: one CSV per record table of the app with every column as stored (ids; times in UTC),
``archive/tables.csv`` saying which table holds what, and ``archive/draft.yaml`` when the draft has
changes that were never published. The importer never reads ``archive/`` (a pack may hold other
.csv and .yaml files); it is there so that no value is lost.

Reading the tables is this module's; what they are and the removal are ``runtime.app_removal``'s.
"""
from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from builder import store
from runtime.app_removal import record_tables

from .export import export_app, strip_ids
from .loader import Pack, dump_pack
from .safe_yaml import dump_yaml

ARCHIVE = "archive"


@dataclass
class FullExport:
    pack: Pack
    files: dict[str, bytes]          # archive/… path inside the pack -> bytes
    tables: list[dict]               # runtime.app_removal.record_tables


def full_export(conn: Connection, app_key: str, *, default_tz: str = "Asia/Shanghai") -> FullExport:
    """The app's full export, read in ``conn``'s transaction; writes nothing."""
    row = store.app_row(conn, app_key)
    draft = store.get_draft(conn, app_key)
    latest = store.latest_revision(conn, app_key)
    if latest is None:
        # never published: no tables, no records; the draft is the app
        doc = strip_ids(draft)
        pack = Pack(name=row["pack_name"] or app_key, version=row["pack_version"] or "1.0.0", format_version=1,
                    title=(doc.get("label") or app_key)[:200], description="", requires={"jimu": ">=0.1"},
                    app=doc, sample_data={}, source=f"app:{app_key}")
    else:
        pack = export_app(conn, app_key, with_data=True, default_tz=default_tz)
    tables = record_tables(conn, app_key)
    files = {f"{ARCHIVE}/{t['table']}.csv": table_csv(conn, t["table"]) for t in tables}
    files[f"{ARCHIVE}/tables.csv"] = _csv([["file", "table", "entity", "kind", "retired", "rows"]]
                                          + [[f"{t['table']}.csv", t["table"], t["entity"], t["kind"],
                                              _text(t["retired"]), str(t["rows"])] for t in tables])
    if latest is not None and latest[1] != draft:
        files[f"{ARCHIVE}/draft.yaml"] = dump_yaml(strip_ids(draft)).encode("utf-8")
    return FullExport(pack=pack, files=files, tables=tables)


def table_csv(conn: Connection, name: str) -> bytes:
    """Every row of one record table, every column as the database holds it, in id order."""
    names = [c["name"] for c in sa.inspect(conn).get_columns(name)]
    # untyped columns: the values as stored, whatever the metadata says about them today
    table = sa.table(name, *[sa.column(n) for n in names])
    order = [table.c.id] if "id" in names else []
    rows = conn.execute(sa.select(table).order_by(*order))
    return _csv([names] + [[_text(v) for v in r] for r in rows])


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return str(value)


def _csv(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows(rows)
    # with a BOM, like the sample data, so that spreadsheet programs open the 中文 right
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def write_full_export(export: FullExport, out_path: str | Path) -> Path:
    """Write the pack (``dump_pack``) and its archive files: a folder, or a .zip when the name ends
    with .zip. The same export always gives the same bytes."""
    out = dump_pack(export.pack, out_path)
    if out.suffix.lower() == ".zip":
        with zipfile.ZipFile(out, "a", zipfile.ZIP_DEFLATED) as zf:
            for rel, data in export.files.items():
                info = zipfile.ZipInfo(f"{export.pack.name}/{rel}", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
        return out
    for rel, data in export.files.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return out
