"""Benchmark: a two-level grouped report through the report engine vs hand-written SQL vs Python.

Generates N orders (default 1,000,000) in a SQLite file (or a PostgreSQL database with
``--postgres URL``) with Core bulk inserts and the covering index a (status × month) report
implies — (status, created_at, amount) — then times, median of ``--runs`` runs each:

- engine: ``run_report`` for status × month(created_at) in Asia/Shanghai with count, sum and avg
  of amount (one query; its totals come from window aggregates in the same query);
- raw: the equivalent hand-written SQL on the same database;
- python: fetching (status, created_at, amount) and aggregating in a dict.

The three run in turns (engine, raw, python; ``--runs`` times) so that a busy machine slows them
alike. It prints the medians and the ratios engine/raw (target ≤ 1.2×) and python/raw, and checks that
the three agree. Run by hand: ``python bench/reports.py [--rows N] [--db PATH] [--postgres URL [--keep]]``
(on PostgreSQL it creates ``e_bench_order`` in the URL's search path and drops it afterwards).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.types import TypeDecorator  # noqa: E402

from engines.model import App  # noqa: E402
from engines.reports import run_report  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 15, 4, 0, tzinfo=UTC)
STATUSES = ("new", "contacted", "qualified", "proposal", "won", "lost")
BATCH = 50_000


class NaiveUTC(TypeDecorator):
    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value if value is None or value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=UTC)


class Money(TypeDecorator):
    impl = sa.Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect):
        asdecimal = dialect.name != "sqlite"
        return dialect.type_descriptor(sa.Numeric(18, 2, asdecimal=asdecimal))

    def process_result_value(self, value, dialect):
        return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


APP = App.from_dict({"app": "bench", "entities": [{"key": "order", "fields": [
    {"key": "status", "type": "select", "options": list(STATUSES)},
    {"key": "amount", "type": "currency"}]}]})
SPEC = {"entity": "order", "group_by": ["status", {"field": "created_at", "bucket": "month"}],
        "measures": [{"agg": "count"}, {"agg": "sum", "field": "amount"}, {"agg": "avg", "field": "amount"}]}


def make_table() -> tuple[sa.MetaData, sa.Table]:
    md = sa.MetaData()
    table = sa.Table("e_bench_order", md, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("c_status", sa.String(50)), sa.Column("c_created_at", NaiveUTC),
                     sa.Column("c_amount", Money), sa.Column("c_owner", sa.Integer),
                     sa.Index("ix_bench_status_created_amount", "c_status", "c_created_at", "c_amount"))
    return md, table


class Tables:
    def __init__(self, table: sa.Table):
        self.t = table

    def table(self, entity_key):
        return self.t

    def column(self, entity_key, field_key):
        return self.t.c.id if field_key == "id" else self.t.c[f"c_{field_key}"]


def generate(engine, table: sa.Table, md: sa.MetaData, rows: int) -> None:
    with engine.connect() as conn:
        if sa.inspect(conn).has_table(table.name):
            have = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()
            if have == rows:
                print(f"reusing {rows:,} rows")
                return
    md.drop_all(engine)
    md.create_all(engine)
    rnd = random.Random(42)
    start = datetime(2024, 3, 15)
    span = int(timedelta(days=730).total_seconds())
    t0 = time.perf_counter()
    with engine.begin() as conn:
        for first in range(0, rows, BATCH):
            batch = [{"c_status": rnd.choice(STATUSES),
                      "c_created_at": start + timedelta(seconds=rnd.randrange(span)),
                      "c_amount": round(rnd.uniform(1, 10_000), 2) if rnd.random() > 0.02 else None,
                      "c_owner": rnd.randrange(1, 50)} for _ in range(min(BATCH, rows - first))]
            conn.execute(table.insert(), batch)
    elapsed = time.perf_counter() - t0
    # Statistics, and on PostgreSQL the visibility map (autovacuum sets it after bulk inserts in
    # production): without it an index-only scan fetches every heap row.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE e_bench_order" if engine.dialect.name == "postgresql" else "ANALYZE")
    print(f"inserted {rows:,} rows in {elapsed:.1f} s ({rows / elapsed:,.0f} rows/s, Core executemany)")


def raw_sql(dialect: str) -> str:
    if dialect == "sqlite":
        month = "date(c_created_at, '+28800 seconds', 'start of month')"
    else:
        month = "CAST(date_trunc('month', timezone('Asia/Shanghai', timezone('UTC', c_created_at))) AS DATE)"
    return (f"SELECT c_status, {month} AS m, COUNT(*), SUM(c_amount), AVG(c_amount) "
            f"FROM e_bench_order GROUP BY c_status, m ORDER BY c_status, m")


def by_engine(engine, tables):
    with engine.connect() as conn:
        result = run_report(conn, APP, SPEC, tables, tz=TZ, now=NOW)
    return {(r["status"], r["created_at_month"]): (r["count"], r["sum_amount"]) for r in result["rows"]}


def by_raw(engine):
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(raw_sql(engine.dialect.name)).all()
    return {(s, m if isinstance(m, str) else m.isoformat()): (n, float(t)) for s, m, n, t, _avg in rows}


def by_python(engine):
    groups: dict = defaultdict(lambda: [0, Decimal(0), 0])
    with engine.connect() as conn:
        result = conn.exec_driver_sql("SELECT c_status, c_created_at, c_amount FROM e_bench_order")
        for status, created, amount in result:
            if isinstance(created, str):
                created = datetime.fromisoformat(created)
            local = created.replace(tzinfo=UTC).astimezone(TZ)
            g = groups[(status, f"{local.year:04d}-{local.month:02d}-01")]
            g[0] += 1
            if amount is not None:
                g[1] += Decimal(str(amount))
                g[2] += 1
    return {k: (n, float(s)) for k, (n, s, _c) in groups.items()}


def interleaved(fns: dict, runs: int) -> tuple[dict, dict]:
    """Median seconds and last answer of each function, run in turns so that load hits all alike."""
    times: dict = {name: [] for name in fns}
    out: dict = {}
    for _ in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            out[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", help="SQLite file (kept and reused); default: a temporary file")
    parser.add_argument("--postgres", metavar="URL", help="run on this PostgreSQL database instead")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL table for the next run")
    args = parser.parse_args(argv)
    tmp = None
    if args.postgres:
        url = args.postgres.replace("postgresql://", "postgresql+psycopg://", 1)
    else:
        path = args.db or os.path.join(tmp := tempfile.mkdtemp(prefix="jimu-bench-"), "reports.db")
        url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    md, table = make_table()
    tables = Tables(table)
    try:
        generate(engine, table, md, args.rows)
        by_engine(engine, tables)                # warm caches and the page cache once
        medians, out = interleaved({"engine": lambda: by_engine(engine, tables), "raw": lambda: by_raw(engine),
                                    "python": lambda: by_python(engine)}, args.runs)
        (engine_s, e), (raw_s, r), (py_s, p) = ((medians[k], out[k]) for k in ("engine", "raw", "python"))
        assert set(e) == set(r) == set(p), "the three methods found different groups"
        for key in e:
            assert e[key][0] == r[key][0] == p[key][0], key
            assert abs(e[key][1] - r[key][1]) < 0.01 * max(1, abs(r[key][1])) * 1e-6 + 0.01, key
        print(f"{engine.dialect.name}, {args.rows:,} rows, {len(e)} groups, median of {args.runs}:")
        print(f"  engine (run_report) {engine_s * 1000:9.1f} ms")
        print(f"  raw SQL             {raw_s * 1000:9.1f} ms")
        print(f"  python aggregation  {py_s * 1000:9.1f} ms")
        ratio = engine_s / raw_s
        print(f"  engine/raw = {ratio:.2f}x (target <= 1.2x: {'ok' if ratio <= 1.2 else 'MISSED'}); "
              f"python/raw = {py_s / raw_s:.2f}x")
    finally:
        if args.postgres and not args.keep:
            md.drop_all(engine)
        engine.dispose()
        if tmp:
            for name in os.listdir(tmp):
                os.remove(os.path.join(tmp, name))
            os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
