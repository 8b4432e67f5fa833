"""Where a record stands in its flow: the compiled flow of a revision, the flow instance row and
its SLA clocks, and the SLA timers those clocks need.

Owns ``FlowCache`` (compiled ``FlowDef`` + business calendars per app revision: running instances
keep the revision they started with, so old revisions are loaded from the metadata store), the
``jimu_flow_instances`` row (state, revision, and per SLA its target, events and the timers that
already fired in the current cycle), folding SLA events into statuses (``engines.sla``), planning
the warn/breach/escalation timers of a record (cancelling the old ones), and ``explain_sla``.

Does not own transitions or actions (``runtime.flows_runtime``) nor running timers.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from builder import store
from builder.validation import field_env
from engines.calendars import BusinessCalendar
from engines.flows import FlowDef
from engines.model import App
from engines.sla import SlaClock, SlaPolicy, explain, plan_timers, policy_events_for_transition, target_for

from . import system_tables as st
from . import timers

SLA_TIMER_KINDS = ("sla_warn", "sla_breach", "sla_escalation")
_KIND = {"warn": "sla_warn", "breach": "sla_breach", "escalate": "sla_escalation"}


@dataclass
class FlowInfo:
    """One flow of one app revision, compiled, with its calendars."""
    flow: FlowDef
    revision: int
    app: App
    tz: Any
    _calendars: dict[str, BusinessCalendar] = field(default_factory=dict)

    def calendar(self, policy: SlaPolicy) -> BusinessCalendar:
        key = policy.calendar or ""
        if key not in self._calendars:
            spec = next((c for c in self.app.calendars if c.get("key") == policy.calendar), None)
            self._calendars[key] = (BusinessCalendar.from_spec(spec, default_timezone=str(self.tz)) if spec
                                    else BusinessCalendar.always(self.tz))
        return self._calendars[key]

    def policy(self, key: str) -> SlaPolicy | None:
        return next((p for p in self.flow.slas if p.key == key), None)


class FlowCache:
    """Compiled flows keyed by (app, revision, entity); bounded, thread-safe, explicit."""

    def __init__(self, size: int = 128):
        self.size = size
        self._items: dict[tuple, FlowInfo | None] = {}
        self._lock = threading.Lock()

    def get(self, conn: Connection, capp, entity_key: str, revision: int | None = None) -> FlowInfo | None:
        revision = capp.revision if revision is None else revision
        key = (capp.key, revision, entity_key)
        if key in self._items:
            return self._items[key]
        app = capp.app if revision == capp.revision else App.from_dict(store.get_revision(conn, capp.key, revision))
        info = build(app, entity_key, revision, capp.tz)
        with self._lock:
            if len(self._items) >= self.size:
                self._items.clear()
            self._items[key] = info
        return info


def build(app: App, entity_key: str, revision: int, tz) -> FlowInfo | None:
    spec = app.flow_for(entity_key)
    entity = app.entity(entity_key)
    if spec is None or entity is None:
        return None
    flow = FlowDef.from_spec(spec, field_env(app, entity), calendars={c.get("key") for c in app.calendars})
    return FlowInfo(flow=flow, revision=revision, app=app, tz=tz)


# ---------------------------------------------------------------------- instances
@dataclass
class Instance:
    flow: str
    revision: int
    state: str
    sla: list[dict]
    stored: bool = True

    def entry(self, key: str) -> dict:
        found = next((e for e in self.sla if e.get("key") == key), None)
        if found is None:
            found = {"key": key, "target": None, "events": [], "fired": []}
            self.sla.append(found)
        return found

    def as_json(self) -> dict:
        return {"flow": self.flow, "state": self.state, "revision": self.revision}


def _instance(r) -> Instance:
    return Instance(flow=r["flow"], revision=r["revision"], state=r["state"], sla=json.loads(r["sla"] or "[]"))


def load_instances(conn: Connection, app: str, entity: str, ids: Iterable[int]) -> dict[int, Instance]:
    fi = st.flow_instances
    ids = sorted({i for i in ids if i is not None})
    out: dict[int, Instance] = {}
    for i in range(0, len(ids), 500):
        q = sa.select(fi).where(fi.c.app == app, fi.c.entity == entity, fi.c.record_id.in_(ids[i:i + 500]))
        out.update({r["record_id"]: _instance(r) for r in conn.execute(q).mappings()})
    return out


def load_instance(conn: Connection, app: str, entity: str, record_id: int) -> Instance | None:
    return load_instances(conn, app, entity, [record_id]).get(record_id)


def save_instance(conn: Connection, app: str, entity: str, record_id: int, inst: Instance, now: datetime) -> None:
    fi = st.flow_instances
    values = {"flow": inst.flow, "revision": inst.revision, "state": inst.state,
              "sla": json.dumps(inst.sla, ensure_ascii=False), "updated_at": now.astimezone(UTC)}
    if inst.stored:
        conn.execute(fi.update().where(fi.c.app == app, fi.c.entity == entity, fi.c.record_id == record_id)
                     .values(**values))
    else:
        conn.execute(fi.insert().values(app=app, entity=entity, record_id=record_id, **values))
        inst.stored = True


def delete_instance(conn: Connection, app: str, entity: str, record_id: int) -> None:
    fi = st.flow_instances
    conn.execute(fi.delete().where(fi.c.app == app, fi.c.entity == entity, fi.c.record_id == record_id))


# ---------------------------------------------------------------------- SLA clocks
def _events(entry: dict) -> list[tuple[datetime, str]]:
    return [(datetime.fromisoformat(at), kind) for at, kind in entry.get("events") or []]


def clock(info: FlowInfo, policy: SlaPolicy, entry: dict) -> SlaClock | None:
    if entry.get("target") is None or not entry.get("events"):
        return None
    return SlaClock(policy.key, timedelta(seconds=entry["target"]), info.calendar(policy), _events(entry),
                    warn_before=policy.warn_before)


def _target(policy: SlaPolicy, values: dict) -> int | None:
    target = target_for(policy, values)
    return None if target is None else round(target.total_seconds())


def apply_events(info: FlowInfo, inst: Instance, from_state: str | None, to_state: str, values: dict,
                 at: datetime) -> bool:
    """Record the SLA events of a state change; answers whether any clock changed."""
    changed = False
    for policy in info.flow.slas:
        kinds = policy_events_for_transition(policy, from_state, to_state)
        if not kinds:
            continue
        entry = inst.entry(policy.key)
        for kind in kinds:
            if kind == "start":
                current = clock(info, policy, entry)
                status = current.status(at) if current is not None else None
                if status is not None and status["stopped_at"] is None:
                    continue                   # already running or paused: a start changes nothing
                entry.update(target=_target(policy, values), events=[], fired=[])
            elif not entry.get("events"):
                continue                       # no cycle to pause, resume or stop
            entry["events"].append([at.astimezone(UTC).isoformat(), kind])
            changed = True
    return changed


def retarget(info: FlowInfo, inst: Instance, values: dict, at: datetime) -> bool:
    """A field the target depends on changed (e.g. severity): running cycles take the new target."""
    changed = False
    for policy in info.flow.slas:
        entry = next((e for e in inst.sla if e.get("key") == policy.key), None)
        current = clock(info, policy, entry) if entry else None
        status = current.status(at) if current is not None else None
        if status is None or status["stopped_at"] is not None:
            continue
        target = _target(policy, values)
        if target is not None and target != entry.get("target"):
            entry["target"], changed = target, True
    return changed


def statuses(info: FlowInfo, inst: Instance, now: datetime, tz) -> list[dict]:
    """The ``_sla`` of a record: one item per clock that has started."""
    out = []
    for policy in info.flow.slas:
        entry = next((e for e in inst.sla if e.get("key") == policy.key), None)
        current = clock(info, policy, entry) if entry else None
        status = current.status(now) if current is not None else None
        if status is None:
            continue
        out.append({"key": policy.key, "status": status["status"],
                    "due_at": status["due_at"].astimezone(tz).isoformat() if status["due_at"] else None,
                    "remaining_seconds": status["remaining_seconds"]})
    return out


def plan(conn: Connection, info: FlowInfo, inst: Instance, app: str, entity: str, record_id: int,
         now: datetime) -> int:
    """Cancel the record's SLA timers and schedule what its clocks need now; answers how many."""
    timers.cancel(conn, app=app, entity=entity, record_id=record_id, kinds=SLA_TIMER_KINDS)
    rows = []
    for policy in info.flow.slas:
        entry = next((e for e in inst.sla if e.get("key") == policy.key), None)
        current = clock(info, policy, entry) if entry else None
        status = current.status(now) if current is not None else None
        if status is None:
            continue
        planned = plan_timers(policy, status, info.calendar(policy))
        if status["status"] == "breached" and status["stopped_at"] is None:
            # due while nobody looked (downtime, or a change after the due time): fire the breach now
            planned.insert(0, {"kind": "breach", "at": status["breached_at"], "level": 0})
        fired = set(entry.get("fired") or [])
        for item in planned:
            tag = item["kind"] if item["kind"] != "escalate" else f"escalate:{item['level']}"
            if tag in fired:
                continue
            rows.append(timers.row(_KIND[item["kind"]], item["at"], app=app, entity=entity, record_id=record_id,
                                   payload={"flow": info.flow.key, "sla": policy.key, "tag": tag,
                                            "level": item["level"],
                                            "cycle": status["started_at"].astimezone(UTC).isoformat()}))
    timers.schedule_many(conn, rows)
    return len(rows)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def explain_info(info: FlowInfo, values: dict, at: datetime,
                 pauses: Iterable[tuple[datetime, datetime | None]] = ()) -> list[dict]:
    out = []
    pauses = list(pauses)
    for policy in info.flow.slas:
        item = explain(policy, values, at, info.calendar(policy), pauses)
        item["starts_on"] = list(policy.start_states)
        item["starts_at_create"] = info.flow.initial in policy.start_states
        out.append(_jsonable(item))
    return out
