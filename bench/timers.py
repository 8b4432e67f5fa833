"""One scheduler sweeping 10,000 due timers vs a bare ``UPDATE … RETURNING`` claim loop on the
same table.

    python bench/timers.py [--timers 10000] [--runs 3] [--postgres URL]

The sweeper does the real work: claim (SKIP LOCKED on PostgreSQL) in a short transaction, run
each timer's handler in a savepoint of one batch transaction, mark it done with a check that the
claim is still ours. The handler here does nothing, so the figure is the sweeper's own overhead.
The baseline marks the same rows done with one ``UPDATE … WHERE id IN (SELECT … LIMIT n)
RETURNING id`` per batch and nothing else. Prints timers/s of both and their ratio (medians).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

from runtime import system_tables as st  # noqa: E402
from runtime import timers  # noqa: E402
from runtime.catalog import Catalog  # noqa: E402
from runtime.db import create_db_engine  # noqa: E402
from runtime.hooks import default_hooks  # noqa: E402
from runtime.records import RecordsService  # noqa: E402
from runtime.scheduler import Scheduler  # noqa: E402
from runtime.system_tables import create_all  # noqa: E402

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
BATCH = 250


def seed(engine, n: int) -> None:
    t = st.timers
    with engine.begin() as conn:
        conn.execute(t.delete())
        rows = [timers.row("bench_noop", NOW - timedelta(seconds=i % 3600), payload={"i": i}) for i in range(n)]
        for i in range(0, n, 5000):
            timers.schedule_many(conn, rows[i:i + 5000])


def sweeper(engine, n: int) -> float:
    seed(engine, n)
    catalog = Catalog("Asia/Shanghai")
    sched = Scheduler(engine, catalog, RecordsService(catalog, default_hooks(catalog)), worker_id="bench",
                      batch=BATCH)
    sched.register("bench_noop", lambda ctx, timer: None)
    sched.tick(NOW - timedelta(days=1))          # warm-up: sync, outbox, nothing due
    start = time.perf_counter()
    stats = sched.tick(NOW)
    elapsed = time.perf_counter() - start
    assert stats["timers"]["done"] == n, stats
    return n / elapsed


def bare_claim_loop(engine, n: int) -> float:
    seed(engine, n)
    t = st.timers
    done = 0
    start = time.perf_counter()
    while True:
        due = (sa.select(t.c.id).where(t.c.status == "pending", t.c.due_at <= NOW).order_by(t.c.due_at, t.c.id)
               .limit(BATCH).with_for_update(skip_locked=True))
        with engine.begin() as conn:
            ids = conn.execute(t.update().where(t.c.id.in_(due.scalar_subquery()))
                               .values(status="done", done_at=NOW).returning(t.c.id)).scalars().all()
        done += len(ids)
        if len(ids) < BATCH:
            break
    elapsed = time.perf_counter() - start
    assert done == n, done
    return n / elapsed


def run(url: str, n: int, runs: int) -> None:
    engine = create_db_engine(url)
    create_all(engine)
    ours = statistics.median(sweeper(engine, n) for _ in range(runs))
    bare = statistics.median(bare_claim_loop(engine, n) for _ in range(runs))
    print(f"{engine.dialect.name:10} sweeper {ours:9,.0f} timers/s · bare UPDATE…RETURNING {bare:9,.0f} timers/s"
          f" · overhead ×{bare / ours:.1f}")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", help="also run on this PostgreSQL (a throwaway schema is used)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/timers.db", args.timers, args.runs)
    if args.postgres:
        schema = "bench_" + uuid.uuid4().hex[:8]
        admin = sa.create_engine(args.postgres.replace("postgresql://", "postgresql+psycopg://", 1))
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            sep = "&" if "?" in args.postgres else "?"
            run(f"{args.postgres}{sep}options=-csearch_path%3D{schema}", args.timers, args.runs)
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
