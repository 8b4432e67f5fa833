"""The scheduler: one sweeper that fires due timers, keeps periodic jobs planned and delivers the outbox.

``Scheduler.tick(now)`` is the whole job: take back claims of dead processes, keep the periodic
automations in line with the published rules (at most once a minute, under a leader lock), claim
and run every due timer (``runtime.timers``; each fires exactly once even with several scheduler
processes on one database), then deliver due outbox messages. APScheduler only calls ``tick`` on
an interval (``run_forever``); no job lives in memory, so a restart loses nothing and timers that
came due while the process was down fire at the first tick.

Timer kinds and their handlers: ``sla_warn``/``sla_breach``/``sla_escalation`` (flows),
``date_automation``/``cron_automation`` (scheduled rules); ``register`` adds others.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Connection, Engine

from . import scheduled_rules, timers
from .catalog import Catalog
from .context import SYSTEM, Context
from .flows_runtime import FlowService
from .outbox import Outbox

log = logging.getLogger("jimu.scheduler")

TimerHandler = Callable[[Context, dict], None]


class Scheduler:
    def __init__(self, engine: Engine, catalog: Catalog, records, *, worker_id: str | None = None,
                 interval: float = 2.0, batch: int = 200, outbox: Outbox | None = None,
                 sync_every: timedelta = timedelta(seconds=60), owns_engine: bool = False):
        self.engine = engine
        self.catalog = catalog
        self.records = records
        self.flows = FlowService(records)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.interval = interval
        self.batch = batch
        self.outbox = outbox or Outbox(engine, worker=self.worker_id)
        self.sync_every = sync_every
        self._owns_engine = owns_engine
        self._last_sync: datetime | None = None
        self._stop = threading.Event()
        self._aps = None
        self.handlers: dict[str, TimerHandler] = {
            "sla_warn": self.flows.on_sla_timer,
            "sla_breach": self.flows.on_sla_timer,
            "sla_escalation": self.flows.on_sla_timer,
            scheduled_rules.DATE_KIND: lambda ctx, t: scheduled_rules.run_date_timer(self.flows, ctx, t),
            scheduled_rules.CRON_KIND: lambda ctx, t: scheduled_rules.run_cron_timer(self.flows, ctx, t),
        }

    @classmethod
    def for_url(cls, url: str, **kw) -> Scheduler:
        """A scheduler on its own engine and services, as ``jimu scheduler`` and ``jimu serve`` run it."""
        from .db import create_db_engine
        from .hooks import default_hooks
        from .records import RecordsService
        from .system_tables import create_all

        engine = create_db_engine(url)
        create_all(engine)
        catalog = Catalog(os.environ.get("JIMU_TIMEZONE") or "Asia/Shanghai")
        return cls(engine, catalog, RecordsService(catalog, default_hooks(catalog)), owns_engine=True, **kw)

    def register(self, kind: str, handler: TimerHandler) -> None:
        self.handlers[kind] = handler

    def _handler_for(self, kind: str):
        handler = self.handlers.get(kind)
        if handler is None:
            return None

        def run(conn: Connection, timer: dict, now: datetime) -> None:
            handler(Context(conn, SYSTEM, now), timer)
        return run

    # ------------------------------------------------------------------ the sweep
    def tick(self, now: datetime | None = None) -> dict:
        """One sweep at ``now`` (tests pass a frozen or advanced clock; nothing sleeps)."""
        now = (now or datetime.now(UTC)).astimezone(UTC)
        stats: dict = {"recovered": timers.recover_stale(self.engine, now)}
        if self._last_sync is None or now - self._last_sync >= self.sync_every or now < self._last_sync:
            stats["sync"] = scheduled_rules.sync(self.engine, self.catalog, now)
            self._last_sync = now
        stats["timers"] = timers.run_due(self.engine, self._handler_for, self.worker_id, now, limit=self.batch)
        stats["outbox"] = self.outbox.deliver_due(now)
        return stats

    def _safe_tick(self) -> None:
        if self._stop.is_set():
            return
        try:
            self.tick()
        except Exception:  # noqa: BLE001 - one bad sweep must not stop the next ones
            log.exception("scheduler tick failed")

    # ------------------------------------------------------------------ running
    def run_forever(self) -> None:
        """Tick every ``interval`` seconds until ``stop()``; blocks the calling thread."""
        from apscheduler.schedulers.blocking import BlockingScheduler

        if self._stop.is_set():
            return
        self._aps = BlockingScheduler(timezone=UTC)
        self._aps.add_job(self._safe_tick, "interval", seconds=self.interval, id="jimu-sweeper",
                          max_instances=1, coalesce=True, next_run_time=datetime.now(UTC),
                          misfire_grace_time=None)
        try:
            self._aps.start()
        finally:
            if self._owns_engine:
                self.engine.dispose()

    def stop(self) -> None:
        self._stop.set()
        aps = self._aps
        if aps is not None and aps.running:
            aps.shutdown(wait=True)          # let a sweep in progress finish its transaction
