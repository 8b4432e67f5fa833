"""Durable timers: rows in ``jimu_timers`` that fire once, at or after their due time.

Owns scheduling and cancelling timers (inside the caller's transaction, so a timer exists exactly
when the change that planned it does), claiming due timers (a short transaction: ``SELECT … FOR
UPDATE SKIP LOCKED`` on PostgreSQL, the single writer lock of ``BEGIN IMMEDIATE`` on SQLite; claimed
rows are marked ``running`` with the claimer's id), and running claimed timers: each in a savepoint
of one batch transaction whose ``done`` mark commits together with the handler's writes, so that a
timer's effects happen exactly once. A failing handler is retried with exponential backoff, then
marked ``failed``. A claim left ``running`` by a crashed process is taken back after a lease.

What a timer does is not here: handlers by kind live with their engines and are wired by
``runtime.scheduler``.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from engines.errors import JimuError

from . import system_tables as st

log = logging.getLogger("jimu.timers")

PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"
MAX_ATTEMPTS = 5
BASE_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
LEASE = timedelta(minutes=10)

Handler = Callable[[Connection, dict, datetime], Any]


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("timers need aware datetimes")
    return at.astimezone(UTC)


def row(kind: str, due_at: datetime, *, app: str | None = None, entity: str | None = None,
        record_id: int | None = None, payload: dict | None = None) -> dict:
    """One timer row, ready for ``schedule_many``."""
    return {"kind": kind, "due_at": _utc(due_at), "app": app, "entity": entity, "record_id": record_id,
            "payload": json.dumps(payload or {}, ensure_ascii=False, default=str), "status": PENDING,
            "attempts": 0}


def schedule(conn: Connection, kind: str, due_at: datetime, **kw: Any) -> int:
    return conn.execute(st.timers.insert().values(**row(kind, due_at, **kw))).inserted_primary_key[0]


def schedule_many(conn: Connection, rows: list[dict]) -> None:
    if rows:
        conn.execute(st.timers.insert(), rows)


def pending_for(conn: Connection, *, app: str, entity: str | None = None, record_id: int | None = None,
                kinds: Iterable[str] | None = None) -> list[dict]:
    """Pending timers of one record (or of an app), payload decoded."""
    t = st.timers
    q = sa.select(t).where(t.c.status == PENDING, t.c.app == app)
    if entity is not None:
        q = q.where(t.c.entity == entity)
    if record_id is not None:
        q = q.where(t.c.record_id == record_id)
    if kinds is not None:
        q = q.where(t.c.kind.in_(sorted(set(kinds))))
    return [decode(r) for r in conn.execute(q.order_by(t.c.due_at, t.c.id)).mappings()]


def cancel(conn: Connection, *, app: str, entity: str | None = None, record_id: int | None = None,
           kinds: Iterable[str] | None = None, match: Callable[[dict], bool] | None = None) -> int:
    """Cancel pending timers of a record (optionally only those whose payload ``match`` accepts)."""
    found = pending_for(conn, app=app, entity=entity, record_id=record_id, kinds=kinds)
    ids = [t["id"] for t in found if match is None or match(t["payload"])]
    return cancel_ids(conn, ids)


def cancel_ids(conn: Connection, ids: list[int]) -> int:
    t = st.timers
    done = 0
    for i in range(0, len(ids), 500):
        done += conn.execute(t.update().where(t.c.id.in_(ids[i:i + 500]), t.c.status == PENDING)
                             .values(status=CANCELLED)).rowcount
    return done


def decode(r: Any) -> dict:
    out = dict(r)
    try:
        out["payload"] = json.loads(out.get("payload") or "{}")
    except ValueError:
        out["payload"] = {}
    return out


def claim(engine: Engine, worker: str, now: datetime, limit: int = 200) -> list[dict]:
    """Mark up to ``limit`` due timers ``running`` for ``worker``; each row goes to one claimer only."""
    t = st.timers
    now = _utc(now)
    due = (sa.select(t.c.id).where(t.c.status == PENDING, t.c.due_at <= now)
           .order_by(t.c.due_at, t.c.id).limit(limit).with_for_update(skip_locked=True))
    with engine.begin() as conn:
        rows = conn.execute(t.update().where(t.c.id.in_(due.scalar_subquery()))
                            .values(status=RUNNING, claimed_by=worker, claimed_at=now, attempts=t.c.attempts + 1)
                            .returning(*t.c)).mappings().all()
    return sorted((decode(r) for r in rows), key=lambda r: (r["due_at"], r["id"]))


def recover_stale(engine: Engine, now: datetime, lease: timedelta = LEASE) -> int:
    """Give back the claims of processes that died while running them."""
    t = st.timers
    with engine.begin() as conn:
        return conn.execute(t.update().where(t.c.status == RUNNING, t.c.claimed_at < _utc(now) - lease)
                            .values(status=PENDING, claimed_by=None)).rowcount


def backoff(attempts: int) -> timedelta:
    return min(BASE_BACKOFF * (2 ** max(0, attempts - 1)), MAX_BACKOFF)


class _HandlerFailed(Exception):
    def __init__(self, timer_id: int):
        self.timer_id = timer_id


def _mark_done(conn: Connection, ids: list[int], worker: str, now: datetime) -> set[int]:
    """Mark our claims done first (inside the batch transaction): a claim another process took
    back after our lease ran out is not ours any more, and its handler does not run here."""
    t = st.timers
    if not ids:
        return set()
    return set(conn.execute(t.update().where(t.c.id.in_(ids), t.c.status == RUNNING, t.c.claimed_by == worker)
                            .values(status=DONE, done_at=now, last_error=None).returning(t.c.id)).scalars())


def _mark_failed(conn: Connection, timer: dict, exc: BaseException, worker: str, now: datetime,
                 max_attempts: int) -> str:
    t = st.timers
    message = exc.message if isinstance(exc, JimuError) else f"{type(exc).__name__}: {exc}"
    log.warning("timer %s (%s) failed: %s", timer["id"], timer["kind"], message)
    if timer["attempts"] >= max_attempts:
        values, outcome = {"status": FAILED, "done_at": now}, "failed"
    else:
        values = {"status": PENDING, "due_at": now + backoff(timer["attempts"]), "claimed_by": None, "done_at": None}
        outcome = "retry"
    conn.execute(t.update().where(t.c.id == timer["id"], t.c.claimed_by == worker)
                 .values(last_error=message[:2000], **values))
    return outcome


def run_claimed(engine: Engine, claimed: list[dict], handler_for: Callable[[str], Handler | None], worker: str,
                now: datetime, *, max_attempts: int = MAX_ATTEMPTS) -> dict:
    """Run claimed timers in one transaction; answers counts by outcome.

    Each timer's handler runs in the transaction that marks it done, so its effects commit exactly
    when its ``done`` does. The batch first runs without savepoints; if a handler fails, the batch
    is rolled back and run again with a savepoint per timer, without calling the failed handler a
    second time (it is marked for retry with backoff, or ``failed`` after ``max_attempts``).
    """
    now = _utc(now)
    stats = {"done": 0, "retry": 0, "failed": 0, "lost": 0}
    if not claimed:
        return stats
    failures: dict[int, BaseException] = {}
    for careful in (False, True):
        outcome = dict.fromkeys(stats, 0)
        try:
            with engine.begin() as conn:
                ours = _mark_done(conn, [t["id"] for t in claimed if t["id"] not in failures], worker, now)
                for timer in claimed:
                    if timer["id"] in failures:
                        outcome[_mark_failed(conn, timer, failures[timer["id"]], worker, now, max_attempts)] += 1
                        continue
                    if timer["id"] not in ours:
                        outcome["lost"] += 1
                        continue
                    handler = handler_for(timer["kind"])
                    try:
                        if handler is None:
                            raise JimuError(f"no handler for timer kind {timer['kind']!r} / 未知的定时任务类型")
                        if careful:
                            with conn.begin_nested():
                                handler(conn, timer, now)
                        else:
                            handler(conn, timer, now)
                        outcome["done"] += 1
                    except Exception as exc:  # noqa: BLE001 - a handler's failure is recorded, never lost
                        failures[timer["id"]] = exc
                        if not careful:
                            raise _HandlerFailed(timer["id"]) from exc
                        outcome[_mark_failed(conn, timer, exc, worker, now, max_attempts)] += 1
        except _HandlerFailed:
            continue
        return outcome
    return stats


def run_due(engine: Engine, handler_for: Callable[[str], Handler | None], worker: str, now: datetime, *,
            limit: int = 200, max_batches: int = 1000) -> dict:
    """Claim and run due timers in batches until none is due (or ``max_batches`` ran)."""
    total = {"done": 0, "retry": 0, "failed": 0, "lost": 0}
    for _ in range(max_batches):
        claimed = claim(engine, worker, now, limit)
        if not claimed:
            break
        for k, v in run_claimed(engine, claimed, handler_for, worker, now).items():
            total[k] += v
        if len(claimed) < limit:
            break
    return total


def counts(conn: Connection, *, kind: str | None = None) -> dict[str, int]:
    """Timers by status (for tests, health pages and the bench)."""
    t = st.timers
    q = sa.select(t.c.status, sa.func.count()).group_by(t.c.status)
    if kind is not None:
        q = q.where(t.c.kind == kind)
    return {status: n for status, n in conn.execute(q)}
