"""Scheduled automations: rules with ``on: [schedule]``, run by the scheduler through timers.

Two shapes. ``schedule: {field: contract_end, offset: {days: -30}, yearly?: true, at?: "09:00"}``
is a date automation: a ``date_automation`` timer per record, planned when the record is created
and re-planned when the date field changes (yearly ones plan the next year after firing).
``schedule: {cron: "0 2 * * *"}`` with a ``condition`` is a periodic job: one ``cron_automation``
timer per rule; when it fires the condition runs as a SQL filter over the records and the actions
run per matching record (each in a savepoint), then the next run is planned.

``sync`` (run under the scheduler's leader lock) keeps the periodic timers in line with the
published rules and re-plans every record's date timers when a rule's schedule changed. The rule
language itself (conditions, actions) is the rules engine's; create/update/delete automations are
not run here.
"""
from __future__ import annotations

import hashlib
import json
import logging
from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.engine import Connection, Engine

from builder import store
from engines.errors import JimuError

from . import system_tables as st
from . import timers
from .record_query import filter_clause

log = logging.getLogger("jimu.scheduled")

DATE_KIND, CRON_KIND = "date_automation", "cron_automation"
MAX_PER_RUN = 10_000
LOCK_KEY = 0x6A696D75          # "jimu": the periodic-jobs leader lock (PostgreSQL advisory lock)


def schedule_rules(app, entity_key: str | None = None) -> list[dict]:
    return [r for r in app.rules if r.get("kind") == "automation" and "schedule" in (r.get("on") or [])
            and isinstance(r.get("schedule"), dict) and (entity_key is None or r.get("entity") == entity_key)]


def date_rules(app, entity_key: str | None = None) -> list[dict]:
    return [r for r in schedule_rules(app, entity_key) if r["schedule"].get("field")]


def cron_rules(app) -> list[dict]:
    return [r for r in schedule_rules(app) if r["schedule"].get("cron")]


def signature(rule: dict) -> int:
    text = json.dumps([rule.get("entity"), rule.get("schedule")], sort_keys=True, default=str)
    return int(hashlib.sha1(text.encode()).hexdigest()[:15], 16)


def _at(spec: dict) -> time:
    try:
        return time.fromisoformat(str(spec.get("at") or "09:00"))
    except ValueError:
        return time(9, 0)


def due_at(rule: dict, value: Any, tz, after: datetime) -> datetime | None:
    """When a date automation fires for a record whose date field holds ``value`` (the first time
    at or after ``after``; None when it has passed or the field is blank)."""
    spec = rule["schedule"]
    offset = spec.get("offset") or {}
    try:
        delta = timedelta(days=float(offset.get("days", 0)), hours=float(offset.get("hours", 0)),
                          minutes=float(offset.get("minutes", 0)))
    except (TypeError, ValueError, OverflowError):
        return None
    try:
        return _first_due(spec, value, delta, tz, after)
    except OverflowError:                      # e.g. 30 days after 9999-12-31: a day no calendar has
        return None


def _first_due(spec: dict, value: Any, delta: timedelta, tz, after: datetime) -> datetime | None:
    if isinstance(value, datetime):
        base = value.astimezone(tz)
    elif isinstance(value, date):
        base = datetime.combine(value, _at(spec), tzinfo=tz)
    else:
        return None
    if not spec.get("yearly"):
        due = base + delta
        return due if due >= after else None
    local = after.astimezone(tz)
    for year in range(local.year - 1, local.year + 3):
        try:
            candidate = base.replace(year=year)
        except ValueError:                     # 29 February in a common year
            candidate = base.replace(year=year, day=28)
        if candidate + delta >= after:
            return candidate + delta
    return None


def _timer_for(capp, entity: str, record_id: int, rule: dict, value: Any, after: datetime) -> dict | None:
    due = due_at(rule, value, capp.tz, after)
    if due is None:
        return None
    return timers.row(DATE_KIND, due, app=capp.key, entity=entity, record_id=record_id,
                      payload={"rule": rule["key"], "sig": signature(rule)})


def plan_record(conn: Connection, capp, entity: str, record_id: int, values: dict, prev: dict | None,
                now: datetime) -> None:
    """(Re-)plan the date automations of one record after a write."""
    rules = date_rules(capp.app, entity)
    for rule in rules:
        name = rule["schedule"]["field"]
        if prev is not None:
            if prev.get(name) == values.get(name):
                continue
            timers.cancel(conn, app=capp.key, entity=entity, record_id=record_id, kinds=[DATE_KIND],
                          match=lambda p, key=rule["key"]: p.get("rule") == key)
        row = _timer_for(capp, entity, record_id, rule, values.get(name), now)
        if row is not None:
            timers.schedule_many(conn, [row])


def _rule(capp, key: str) -> dict | None:
    return next((r for r in schedule_rules(capp.app) if r.get("key") == key), None)


def run_date_timer(flows, ctx, timer: dict) -> None:
    capp = flows.records.app(ctx, timer["app"])
    rule = _rule(capp, timer["payload"].get("rule"))
    if rule is None or signature(rule) != timer["payload"].get("sig"):
        return                                 # the rule changed or is gone: sync re-planned it
    table = capp.tables[rule["entity"]]
    name = rule["schedule"]["field"]
    row = ctx.conn.execute(sa.select(table.c[name]).where(table.c.id == timer["record_id"])).first()
    if row is None:
        return
    flows.run_actions(ctx, capp, rule["entity"], timer["record_id"], rule.get("actions") or [],
                      source=f"automation {rule['key']}", action="automation",
                      summary=f"scheduled automation {rule.get('label') or rule['key']} / 定时自动化",
                      condition=rule.get("condition"))
    if rule["schedule"].get("yearly"):
        still = timers.pending_for(ctx.conn, app=capp.key, entity=rule["entity"], record_id=timer["record_id"],
                                   kinds=[DATE_KIND])
        if not any(t["payload"].get("rule") == rule["key"] for t in still):
            value = ctx.conn.execute(sa.select(table.c[name]).where(table.c.id == timer["record_id"])).scalar()
            nxt = _timer_for(capp, rule["entity"], timer["record_id"], rule, value,
                             timer["due_at"] + timedelta(seconds=1))
            if nxt is not None:
                timers.schedule_many(ctx.conn, [nxt])


def next_run(rule: dict, tz, after: datetime) -> datetime | None:
    try:
        trigger = CronTrigger.from_crontab(str(rule["schedule"]["cron"]), timezone=tz)
    except ValueError as exc:
        log.warning("automation %s: bad cron %r: %s", rule.get("key"), rule["schedule"].get("cron"), exc)
        return None
    return trigger.get_next_fire_time(None, after.astimezone(tz))


def run_cron_timer(flows, ctx, timer: dict) -> None:
    capp = flows.records.app(ctx, timer["app"])
    rule = _rule(capp, timer["payload"].get("rule"))
    if rule is None or signature(rule) != timer["payload"].get("sig"):
        return
    entity = rule["entity"]
    table = capp.tables[entity]
    q = sa.select(table.c.id).order_by(table.c.id).limit(MAX_PER_RUN)
    if rule.get("condition"):
        q = q.where(filter_clause(capp, entity, rule["condition"], now=ctx.now))
    ids = [r[0] for r in ctx.conn.execute(q)]
    failures = []
    for rid in ids:
        try:
            with ctx.conn.begin_nested():
                flows.run_actions(ctx, capp, entity, rid, rule.get("actions") or [],
                                  source=f"automation {rule['key']}", action="automation",
                                  summary=f"scheduled automation {rule.get('label') or rule['key']} / 定时自动化")
        except JimuError as exc:
            failures.append({"id": rid, "error": exc.message})
    if failures:
        log.warning("automation %s: %d of %d records failed, first: %s", rule["key"], len(failures), len(ids),
                    failures[0])
    nxt = next_run(rule, capp.tz, max(ctx.now, timer["due_at"]) + timedelta(seconds=1))
    if nxt is not None:
        timers.schedule(ctx.conn, CRON_KIND, nxt, app=capp.key, entity=entity,
                        payload={"rule": rule["key"], "sig": signature(rule)})


# ---------------------------------------------------------------------- keeping timers in line with rules
def _leader(conn: Connection) -> bool:
    if conn.dialect.name == "postgresql":
        return bool(conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(LOCK_KEY))).scalar())
    return True                                # SQLite: BEGIN IMMEDIATE made us the only writer


def _marker(conn: Connection, name: str) -> int | None:
    return conn.execute(sa.select(st.counters.c.value).where(st.counters.c.name == name)).scalar()


def _set_marker(conn: Connection, name: str, value: int) -> None:
    c = st.counters
    if conn.execute(c.update().where(c.c.name == name).values(value=value)).rowcount == 0:
        conn.execute(c.insert().values(name=name, value=value))


def sync(engine: Engine, catalog, now: datetime) -> dict:
    """Periodic jobs of every published app, under the leader lock; answers what changed."""
    out = {"leader": False, "cron_planned": 0, "records_planned": 0}
    with engine.begin() as conn:
        if not _leader(conn):
            return out
        out["leader"] = True
        for summary in store.list_apps(conn):
            if not summary["published_revision"]:
                continue
            try:
                capp = catalog.get(conn, summary["app"])
            except JimuError:
                continue
            out["cron_planned"] += _sync_cron(conn, capp, now)
            for rule in date_rules(capp.app):
                out["records_planned"] += _sync_dates(conn, capp, rule, now)
    return out


def _sync_cron(conn: Connection, capp, now: datetime) -> int:
    wanted = {r["key"]: r for r in cron_rules(capp.app)}
    planned = 0
    keep: set[str] = set()
    stale = []
    for t in timers.pending_for(conn, app=capp.key, kinds=[CRON_KIND]):
        rule = wanted.get(t["payload"].get("rule"))
        if rule is None or signature(rule) != t["payload"].get("sig") or rule["key"] in keep:
            stale.append(t["id"])
        else:
            keep.add(rule["key"])
    timers.cancel_ids(conn, stale)
    for key, rule in wanted.items():
        if key in keep:
            continue
        nxt = next_run(rule, capp.tz, now)
        if nxt is not None:
            timers.schedule(conn, CRON_KIND, nxt, app=capp.key, entity=rule.get("entity"),
                            payload={"rule": key, "sig": signature(rule)})
            planned += 1
    return planned


def _sync_dates(conn: Connection, capp, rule: dict, now: datetime) -> int:
    name = f"sched:{capp.key}:{rule['key']}"[:200]
    sig = signature(rule)
    entity, field = rule.get("entity"), rule["schedule"]["field"]
    if _marker(conn, name) == sig or entity not in capp.tables or field not in capp.tables[entity].c:
        return 0
    timers.cancel(conn, app=capp.key, entity=entity, kinds=[DATE_KIND],
                  match=lambda p: p.get("rule") == rule["key"])
    table = capp.tables[entity]
    planned, last = 0, 0
    while True:
        rows = conn.execute(sa.select(table.c.id, table.c[field]).where(table.c.id > last, table.c[field].is_not(None))
                            .order_by(table.c.id).limit(1000)).all()
        if not rows:
            break
        batch = [r for r in (_timer_for(capp, entity, rid, rule, value, now) for rid, value in rows) if r]
        timers.schedule_many(conn, batch)
        planned += len(batch)
        last = rows[-1][0]
    _set_marker(conn, name, sig)
    return planned
