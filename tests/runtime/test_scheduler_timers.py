"""Durable timers: exactly once with two schedulers on one database, claims of dead processes taken
back, failures retried with backoff then marked failed, cancelled timers never fire."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from runtime import timers
from runtime.catalog import Catalog
from runtime.db import create_db_engine
from runtime.hooks import default_hooks
from runtime.records import RecordsService
from runtime.scheduler import Scheduler
from runtime.system_tables import create_all

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
FIRED = sa.Table("t_fired", sa.MetaData(), sa.Column("n", sa.Integer, primary_key=True, autoincrement=True),
                 sa.Column("timer_id", sa.Integer, nullable=False), sa.Column("worker", sa.String(40)))


def scheduler(url: str, worker: str) -> Scheduler:
    """A scheduler with its own engine and services, as a second process would have."""
    engine = create_db_engine(url)
    catalog = Catalog("Asia/Shanghai")
    sched = Scheduler(engine, catalog, RecordsService(catalog, default_hooks(catalog)), worker_id=worker,
                      batch=250, owns_engine=True)

    def fire(ctx, timer):
        ctx.conn.execute(FIRED.insert().values(timer_id=timer["id"], worker=worker))
    sched.register("test_fire", fire)
    return sched


def seed(engine, n: int, due: datetime, kind: str = "test_fire") -> None:
    create_all(engine)
    FIRED.create(engine, checkfirst=True)
    with engine.begin() as conn:
        rows = [timers.row(kind, due - timedelta(seconds=i % 600), payload={"i": i}) for i in range(n)]
        for i in range(0, n, 2000):
            timers.schedule_many(conn, rows[i:i + 2000])


def test_two_schedulers_fire_each_of_10000_timers_exactly_once(engine, db_url):
    seed(engine, 10_000, T0)
    scheds = [scheduler(db_url, "alpha"), scheduler(db_url, "beta")]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def sweep(s: Scheduler) -> None:
        try:
            start.wait()
            for _ in range(200):
                if s.tick(T0 + timedelta(seconds=1))["timers"]["done"] == 0:
                    break
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sweep, args=(s,)) for s in scheds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for s in scheds:
        s.engine.dispose()
    assert not errors, errors
    with engine.connect() as conn:
        fired = conn.execute(sa.select(FIRED.c.timer_id, FIRED.c.worker)).all()
        by_status = timers.counts(conn, kind="test_fire")
    assert len(fired) == 10_000 and len({f.timer_id for f in fired}) == 10_000
    assert by_status == {"done": 10_000}
    shares = {w: sum(1 for f in fired if f.worker == w) for w in ("alpha", "beta")}
    print("timers fired per scheduler:", shares)
    assert sum(shares.values()) == 10_000


def test_a_claim_of_a_dead_process_is_taken_back_after_the_lease(engine, db_url):
    seed(engine, 3, T0)
    claimed = timers.claim(engine, "dead-process", T0, limit=10)
    assert len(claimed) == 3
    alive = scheduler(db_url, "alive")
    try:
        assert alive.tick(T0 + timedelta(minutes=5))["timers"]["done"] == 0       # still leased
        stats = alive.tick(T0 + timedelta(minutes=11))
    finally:
        alive.engine.dispose()
    assert stats["recovered"] == 3 and stats["timers"]["done"] == 3
    # the dead process wakes up: its late "done" does not count twice
    stale = timers.run_claimed(engine, claimed, lambda kind: (lambda c, t, n: None), "dead-process", T0)
    assert stale["lost"] == 3
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(FIRED)).scalar() == 3


def test_a_failing_timer_is_retried_with_backoff_then_failed(engine, db_url):
    seed(engine, 1, T0, kind="test_boom")
    sched = scheduler(db_url, "w")
    calls = []

    def boom(ctx, timer):
        calls.append(timer["attempts"])
        ctx.conn.execute(FIRED.insert().values(timer_id=timer["id"], worker="w"))   # rolled back each time
        raise RuntimeError("downstream is down")
    sched.register("test_boom", boom)
    try:
        now = T0
        for _ in range(8):
            sched.tick(now)
            now += timedelta(hours=2)
    finally:
        sched.engine.dispose()
    assert calls == [1, 2, 3, 4, 5]
    with engine.connect() as conn:
        row = conn.execute(sa.select(timers.st.timers)).mappings().one()
        assert conn.execute(sa.select(sa.func.count()).select_from(FIRED)).scalar() == 0
    assert row["status"] == "failed" and "downstream is down" in row["last_error"] and row["attempts"] == 5


def test_backoff_schedule_and_cancel(engine):
    create_all(engine)
    assert [timers.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert timers.backoff(20) == timers.MAX_BACKOFF
    with engine.begin() as conn:
        keep = timers.schedule(conn, "x", T0, app="a", entity="e", record_id=1, payload={"rule": "keep"})
        drop = timers.schedule(conn, "x", T0, app="a", entity="e", record_id=1, payload={"rule": "drop"})
        assert timers.cancel(conn, app="a", entity="e", record_id=1, match=lambda p: p["rule"] == "drop") == 1
    claimed = timers.claim(engine, "w", T0)
    assert [c["id"] for c in claimed] == [keep] and drop != keep
    assert timers.claim(engine, "w2", T0) == []


def test_run_forever_ticks_until_stopped(engine, db_url):
    seed(engine, 1, datetime.now(UTC) - timedelta(minutes=1))
    sched = scheduler(db_url, "background")
    sched.interval = 0.05
    fired = threading.Event()
    fire = sched.handlers["test_fire"]

    def fire_and_tell(ctx, timer):
        fire(ctx, timer)
        fired.set()
    sched.register("test_fire", fire_and_tell)
    thread = threading.Thread(target=sched.run_forever)
    thread.start()
    try:
        assert fired.wait(20)
    finally:
        sched.stop()
        thread.join(20)
    assert not thread.is_alive()
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(FIRED)).scalar() == 1
        assert timers.counts(conn, kind="test_fire") == {"done": 1}
