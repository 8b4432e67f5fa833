"""CSV import through the records pipeline vs a raw SQLAlchemy Core insert of the same rows.

    python bench/import.py [--rows 100000] [--runs 3] [--postgres URL]

Both sides write the same rows into the same table in one transaction each (the table is emptied
between runs). The import side starts from the CSV bytes: decoding, parsing, mapping, coercion,
defaults, formulas, rules, uniqueness checks, audit entries; the Core side starts from rows already
parsed into Python values and only inserts them. Prints rows/s of both and their ratio (target:
the import within 4x of raw Core). Medians of several runs; read ratios, not absolute figures.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402
from bench_db import bench_database, published  # noqa: E402

from runtime import import_files, importer  # noqa: E402
from runtime import system_tables as st  # noqa: E402
from runtime.context import SYSTEM, Context  # noqa: E402

APP = {"app": "bench_imp", "label": "bench", "entities": [{"key": "customer", "label": "客户", "title_field": "name",
                                                          "fields": [
    {"key": "name", "type": "text", "label": "客户名称", "required": True},
    {"key": "code", "type": "text", "label": "编号", "unique": True},
    {"key": "email", "type": "email", "label": "邮箱"},
    {"key": "level", "type": "select", "label": "等级", "options": [{"value": "key", "label": "重要"},
                                                                    {"value": "normal", "label": "普通"}]},
    {"key": "revenue", "type": "currency", "label": "年收入"},
    {"key": "employees", "type": "number", "label": "员工数"},
    {"key": "since", "type": "date", "label": "签约日期"},
    {"key": "vip", "type": "boolean", "label": "VIP"},
]}]}


def csv_bytes(n: int) -> bytes:
    lines = ["客户名称,编号,邮箱,等级,年收入,员工数,签约日期,VIP"]
    for i in range(n):
        lines.append(f"客户{i},C{i:07},u{i}@example.cn,{'重要' if i % 3 else '普通'},{(i * 37) % 100000}.50,"
                     f"{i % 500},2026-01-{1 + i % 28:02},{'是' if i % 2 else '否'}")
    return ("\n".join(lines) + "\n").encode("utf-8-sig")


def core_rows(n: int) -> list[dict]:
    now = datetime.now(UTC)
    return [{"name": f"客户{i}", "code": f"C{i:07}", "email": f"u{i}@example.cn", "level": "key" if i % 3 else "normal",
             "revenue": Decimal(f"{(i * 37) % 100000}.50"), "employees": i % 500, "since": date(2026, 1, 1 + i % 28),
             "vip": bool(i % 2), "created_at": now, "updated_at": now, "_version": 1} for i in range(n)]


def empty(svc) -> None:
    """A fresh table for each run (on PostgreSQL a DELETE would leave dead rows for the next run's
    unique checks to wade through, which a real import into a live table does not meet)."""
    with svc.engine.begin() as conn:
        table = svc.catalog.get(conn, "bench_imp").tables["customer"]
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f'TRUNCATE TABLE "{table.name}"'))   # a generated table name
        else:
            conn.execute(table.delete())
        conn.execute(st.audit.delete().where(st.audit.c.app == "bench_imp"))


def bench_import(svc, data: bytes, n: int) -> float:
    empty(svc)
    t = time.perf_counter()
    sheet = import_files.open_sheet(data, "bench.csv")
    with svc.engine.begin() as conn:
        report = importer.run_import(svc.records, Context(conn, SYSTEM), "bench_imp", "customer", sheet,
                                     importer.ImportOptions())
    elapsed = time.perf_counter() - t
    assert report["created"] == n and not report["errors"], report["errors"][:3]
    return n / elapsed


def bench_core(svc, data: list[dict]) -> float:
    empty(svc)
    with svc.engine.connect() as conn:
        table = svc.catalog.get(conn, "bench_imp").tables["customer"]
    t = time.perf_counter()
    with svc.engine.begin() as conn:
        for i in range(0, len(data), 1000):
            conn.execute(table.insert(), data[i:i + 1000])
    return len(data) / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--postgres")
    args = p.parse_args()
    with bench_database(args.postgres) as url:
        svc = published(url, APP)
        data, typed = csv_bytes(args.rows), core_rows(args.rows)
        imports, cores = [], []
        for _ in range(args.runs):
            cores.append(bench_core(svc, typed))
            imports.append(bench_import(svc, data, args.rows))
        i, c = statistics.median(imports), statistics.median(cores)
        print(f"database: {svc.engine.dialect.name}, rows per run: {args.rows}, runs: {args.runs}, "
              f"file: {len(data) / 1e6:.1f} MB")
        print(f"raw Core insert        : {c:10.0f} rows/s (median)")
        print(f"CSV import (pipeline)  : {i:10.0f} rows/s (median)")
        print(f"ratio core/import      : {c / i:10.2f}x   (target <= 4x)")
        svc.engine.dispose()

if __name__ == "__main__":
    main()
