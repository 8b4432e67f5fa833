"""SLA clocks as pure values: targets, the clock's state from its events, and an explanation of it.

Owns the ``slas:`` item of a flow (``SlaPolicy``) and its validation against the flow's states,
the app's calendars and the entity's fields; the target of one record (``target_for``); which SLA
events a state change causes (``policy_events_for_transition``); ``SlaClock``, which folds a list
of ``(at, kind)`` events (start, pause, resume, stop) into a status at a given moment; the timers a
clock needs (``plan_timers``) and ``explain``, the human-readable account of a due time.

All durations are business time on the SLA's calendar: a pause really stops the clock and the due
time moves by the working time spent paused. ``remaining_seconds`` and ``paused_seconds`` are
business seconds. Does not own storage of events, timers, the scheduler or running the actions.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .calendars import BusinessCalendar

EVENT_KINDS = ("start", "pause", "resume", "stop")
_UNITS = {"hours": 3600, "minutes": 60}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


def parse_duration(spec: Any) -> timedelta | None:
    """``{hours: N}`` / ``{minutes: N}`` (or both, summed) -> timedelta; None when malformed."""
    if not isinstance(spec, Mapping) or not spec or set(spec) - set(_UNITS):
        return None
    seconds = 0.0
    for unit, value in spec.items():
        number = _number(value)
        if number is None:
            return None
        seconds += number * _UNITS[unit]
    return timedelta(seconds=seconds)


def _enter(value: Any) -> Any:
    """``{enter: states}``, or the states alone as a shorthand."""
    return value.get("enter") if isinstance(value, Mapping) else value


def _states(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list | tuple) else ()


@dataclass(frozen=True)
class Escalation:
    level: int
    after: timedelta
    actions: tuple


@dataclass(frozen=True)
class SlaPolicy:
    key: str
    start_states: tuple[str, ...]
    stop_states: tuple[str, ...]
    pause_states: tuple[str, ...]
    target: Mapping[str, Any]
    calendar: str | None = None
    on_breach: tuple = ()
    warn_before: timedelta | None = None
    escalations: tuple[Escalation, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> SlaPolicy:
        """Build from a (validated) ``slas:`` item; tolerant of missing optional parts."""
        escalations = tuple(
            Escalation(level=i + 1, after=parse_duration(e.get("after")) or timedelta(0),
                       actions=tuple(e.get("actions") or ()))
            for i, e in enumerate(spec.get("escalations") or ()) if isinstance(e, Mapping))
        return cls(
            key=str(spec.get("key")),
            start_states=_states(_enter(spec.get("start"))),
            stop_states=_states(_enter(spec.get("stop"))),
            pause_states=_states(spec.get("pause_in")),
            target=dict(spec.get("target") or {}),
            calendar=spec.get("calendar"),
            on_breach=tuple(spec.get("on_breach") or ()),
            warn_before=parse_duration(spec.get("warn_before")) if spec.get("warn_before") else None,
            escalations=escalations,
            raw=spec,
        )


def as_policy(policy: SlaPolicy | Mapping[str, Any]) -> SlaPolicy:
    return policy if isinstance(policy, SlaPolicy) else SlaPolicy.from_spec(policy)


def target_for(policy: SlaPolicy | Mapping[str, Any], values: Mapping[str, Any]) -> timedelta | None:
    """The target of one record: fixed, or looked up by a field's value (None: no SLA applies)."""
    target = as_policy(policy).target
    by = target.get("by")
    if by is None:
        return parse_duration(target)
    value = values.get(by)
    if value is None:
        return None
    seconds, found = 0.0, False
    for unit, factor in _UNITS.items():
        table = target.get(unit)
        # YAML may read a key as a number (1: 4) while the record holds text, or the reverse
        matches = [v for k, v in table.items() if str(k) == str(value)] if isinstance(table, Mapping) else []
        number = _number(matches[0]) if matches else None
        if number is not None:
            seconds, found = seconds + number * factor, True
    return timedelta(seconds=seconds) if found else None


def validate_policy(spec: Any, *, states: Collection[str], calendars: Collection[str] | None = None,
                    field_env: Mapping[str, Any] | None = None,
                    transitions: Collection[str] | None = None) -> list[dict]:
    """Problems of one ``slas:`` item as ``{"location", "message"}`` (locations relative to the item).

    ``calendars``, ``field_env`` and ``transitions`` left as None skip the checks of those references.
    """
    if not isinstance(spec, Mapping):
        return [{"location": "", "message": "an SLA must be an object / SLA 必须是对象"}]
    out: list[dict] = []

    def err(location: str, message: str) -> None:
        out.append({"location": location, "message": message})

    if not isinstance(spec.get("key"), str) or not spec.get("key"):
        err("key", "key is required / 缺少 key")
    for location, raw, required in (("start.enter", _enter(spec.get("start")), True),
                                    ("stop.enter", _enter(spec.get("stop")), True),
                                    ("pause_in", spec.get("pause_in"), False)):
        names = _states(raw)
        if required and not names:
            err(location, f"{location} needs at least one state / 至少需要一个状态")
        for name in names:
            if name not in states:
                err(location, f"unknown state {name!r} / 未知状态 {name!r}")
    target = spec.get("target")
    if not isinstance(target, Mapping):
        err("target", "target is required, e.g. {hours: 24} / 缺少目标时长")
    elif "by" in target:
        by = target.get("by")
        if field_env is not None and by not in field_env:
            err("target.by", f"unknown field {by!r} / 未知字段 {by!r}")
        tables = [u for u in _UNITS if u in target]
        if not tables or set(target) - {"by", *_UNITS}:
            err("target", "target by a field needs hours: {value: N} or minutes: {value: N} / "
                          "按字段设定目标时需要 hours 或 minutes 对照表")
        options = getattr((field_env or {}).get(by), "options", None)
        for unit in tables:
            table = target[unit]
            if not isinstance(table, Mapping) or any(_number(v) is None for v in table.values()):
                err(f"target.{unit}", f"{unit} must map values to numbers ≥ 0 / {unit} 必须是 值→非负数 的对照表")
            elif options:
                for value in table:
                    if str(value) not in {str(o) for o in options}:
                        err(f"target.{unit}", f"{by} has no option {value!r} / {by} 没有选项 {value!r}")
    elif parse_duration(target) is None:
        err("target", "target must be {hours: N} or {minutes: N} with N ≥ 0 / 目标时长格式应为 {hours: N}")
    cal = spec.get("calendar")
    if cal is not None and calendars is not None and cal not in calendars:
        err("calendar", f"unknown calendar {cal!r} / 未知日历 {cal!r}")
    if spec.get("warn_before") is not None and parse_duration(spec.get("warn_before")) is None:
        err("warn_before", "warn_before must be {hours: N} or {minutes: N} / 提醒时间格式应为 {hours: N}")
    previous = timedelta(-1)
    for i, level in enumerate(spec.get("escalations") or []):
        after = parse_duration(level.get("after")) if isinstance(level, Mapping) else None
        if after is None:
            err(f"escalations[{i}].after", "after must be {hours: N} or {minutes: N} / 升级时间格式应为 {hours: N}")
            continue
        if after < previous:
            err(f"escalations[{i}].after", "escalation levels must be in increasing order of time / "
                                           "升级层级必须按时间先后排列")
        previous = after
        if not isinstance(level.get("actions"), list) or not level.get("actions"):
            err(f"escalations[{i}].actions", "an escalation needs actions / 升级层级需要动作")
    actions = [("on_breach", spec.get("on_breach") or [])] + [
        (f"escalations[{i}].actions", e.get("actions") or [])
        for i, e in enumerate(spec.get("escalations") or []) if isinstance(e, Mapping)]
    for location, items in actions:
        for action in items if isinstance(items, list) else []:
            target_transition = action.get("transition") if isinstance(action, Mapping) else None
            if transitions is not None and target_transition is not None and target_transition not in transitions:
                err(location, f"unknown transition {target_transition!r} / 未知流转 {target_transition!r}")
    return out


def policy_events_for_transition(policy: SlaPolicy | Mapping[str, Any], from_state: str | None,
                                 to_state: str) -> list[str]:
    """The SLA event kinds a state change causes, in the order they apply (from_state None: create)."""
    p = as_policy(policy)
    if from_state == to_state:
        return []
    events = []
    leaving_pause = from_state in p.pause_states
    entering_pause = to_state in p.pause_states
    if leaving_pause and not entering_pause:
        events.append("resume")
    if to_state in p.stop_states:
        events.append("stop")
    if to_state in p.start_states:
        events.append("start")
    if entering_pause and not leaving_pause:
        events.append("pause")
    return events


def warn_time(calendar: BusinessCalendar, due_at: datetime, warn_before: timedelta | None,
              started_at: datetime) -> datetime | None:
    """``warn_before`` of business time before the due time, never before the start."""
    if warn_before is None:
        return None
    return max(calendar.add(due_at, -warn_before), started_at.astimezone(calendar.tz))


def escalation_times(policy: SlaPolicy | Mapping[str, Any], breached_at: datetime,
                     calendar: BusinessCalendar) -> list[dict]:
    """When each escalation level fires: its ``after`` of business time past the breach."""
    return [{"level": e.level, "at": calendar.add(breached_at, e.after), "actions": list(e.actions)}
            for e in as_policy(policy).escalations]


def _seconds(delta: timedelta) -> int:
    return round(delta.total_seconds())


class SlaClock:
    """One SLA clock of one record, folded from its events. Events after ``now`` are ignored.

    A start while the clock runs or is paused is ignored; a start after a stop begins a new cycle.
    Breach: the budget runs out while the clock runs (a pause at that very moment comes too late;
    a stop at that very moment meets the target).
    """

    def __init__(self, key: str, target: timedelta, calendar: BusinessCalendar,
                 events: Iterable[tuple[datetime, str]], *, warn_before: timedelta | None = None):
        self.key = key
        self.target = target
        self.calendar = calendar
        self.warn_before = warn_before
        indexed = list(enumerate(events))
        for _i, (_at, kind) in indexed:
            if kind not in EVENT_KINDS:
                raise ValueError(f"unknown SLA event kind {kind!r}")
        self.events = [e for _i, e in sorted(indexed, key=lambda ie: (ie[1][0].timestamp(), ie[0]))]

    @classmethod
    def for_policy(cls, policy: SlaPolicy | Mapping[str, Any], values: Mapping[str, Any],
                   calendar: BusinessCalendar, events: Iterable[tuple[datetime, str]]) -> SlaClock | None:
        p = as_policy(policy)
        target = target_for(p, values)
        if target is None:
            return None
        return cls(p.key, target, calendar, events, warn_before=p.warn_before)

    def _fold(self, now: datetime) -> dict | None:
        cal = self.calendar
        cycle: dict | None = None
        for at, kind in self.events:
            if at > now:
                break
            if kind == "start" and (cycle is None or cycle["stopped_at"] is not None):
                cycle = {"started_at": at, "segments": [], "open": at, "pause": None,
                         "paused": timedelta(0), "stopped_at": None}
            elif cycle is None or cycle["stopped_at"] is not None:
                continue
            elif kind == "pause" and cycle["open"] is not None:
                cycle["segments"].append((cycle["open"], at, "pause"))
                cycle["open"], cycle["pause"] = None, at
            elif kind == "resume" and cycle["pause"] is not None:
                cycle["paused"] += cal.between(cycle["pause"], at)
                cycle["open"], cycle["pause"] = at, None
            elif kind == "stop":
                if cycle["open"] is not None:
                    cycle["segments"].append((cycle["open"], at, "stop"))
                else:
                    cycle["paused"] += cal.between(cycle["pause"], at)
                cycle["open"], cycle["pause"], cycle["stopped_at"] = None, None, at
        return cycle

    def status(self, now: datetime) -> dict | None:
        """The clock at ``now`` (None before it ever started); times in the calendar's zone."""
        cal, tz = self.calendar, self.calendar.tz
        cycle = self._fold(now)
        if cycle is None:
            return None
        stretches = list(cycle["segments"])
        if cycle["open"] is not None:
            stretches.append((cycle["open"], now, "now"))
        consumed, breached_at, aimed = timedelta(0), None, None
        for a, b, closed_by in stretches:
            if breached_at is None:
                # the due time this running stretch aims at; reached before it ends = breached
                aimed = cal.add(a, self.target - consumed)
                if aimed < b or (aimed == b and closed_by != "stop"):
                    breached_at = aimed
            consumed += cal.between(a, b)
        paused = cycle["paused"]
        if cycle["pause"] is not None:
            paused += cal.between(cycle["pause"], now)
        due_at = None
        if breached_at is not None:
            state, due_at = "breached", breached_at
        elif cycle["stopped_at"] is not None:
            state = "met"
            if stretches and stretches[-1][2] == "stop":
                due_at = aimed
        elif cycle["pause"] is not None:
            state = "paused"
        else:
            state, due_at = "running", aimed
        started = cycle["started_at"].astimezone(tz)
        return {
            "key": self.key,
            "status": state,
            "due_at": due_at.astimezone(tz) if due_at else None,
            "remaining_seconds": _seconds(self.target - consumed),
            "target_seconds": _seconds(self.target),
            "started_at": started,
            "paused_seconds": _seconds(paused),
            "stopped_at": cycle["stopped_at"].astimezone(tz) if cycle["stopped_at"] else None,
            "breached_at": breached_at.astimezone(tz) if breached_at else None,
            "warn_at": warn_time(cal, due_at, self.warn_before, started) if due_at else None,
        }


def plan_timers(policy: SlaPolicy | Mapping[str, Any], status: Mapping[str, Any] | None,
                calendar: BusinessCalendar) -> list[dict]:
    """Timers a clock in this status needs: warn, breach and each escalation level (a running clock),
    or the escalations still ahead (a breached clock that was not stopped)."""
    if not status:
        return []
    p = as_policy(policy)
    timers: list[dict] = []
    if status["status"] == "running":
        if status.get("warn_at") is not None:
            timers.append({"kind": "warn", "at": status["warn_at"], "level": None, "actions": []})
        timers.append({"kind": "breach", "at": status["due_at"], "level": 0, "actions": list(p.on_breach)})
        breached_at = status["due_at"]
    elif status["status"] == "breached" and status.get("stopped_at") is None:
        breached_at = status["breached_at"]
    else:
        return []
    timers += [{"kind": "escalate", **e} for e in escalation_times(p, breached_at, calendar)]
    return timers


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.2f}".rstrip("0").rstrip(".")


def explain(policy: SlaPolicy | Mapping[str, Any], values: Mapping[str, Any], created_at: datetime,
            calendar: BusinessCalendar,
            pauses: Iterable[tuple[datetime, datetime | None]] = ()) -> dict:
    """Why the SLA is due when it is: the target, each pause and how much it moved the due time,
    the holidays crossed, the warn time and when each escalation level would fire.

    Computed as ``start + (target + business time paused)`` on the calendar, independently of
    ``SlaClock``'s stretch-by-stretch walk; the two must agree (the tests hold them to it). A pause
    that starts once the SLA is already due does not count; an open pause (``to`` None) leaves the
    due time undetermined.
    """
    p = as_policy(policy)
    tz = calendar.tz
    start = created_at.astimezone(tz)
    out: dict[str, Any] = {"key": p.key, "calendar": calendar.key, "timezone": str(tz), "started_at": start}
    target = target_for(p, values)
    by = p.target.get("by")
    if target is None:
        return {**out, "applies": False, "due_at": None,
                "lines": [f"No target for {by} = {values.get(by)!r}: no SLA for this record / "
                          f"{by} = {values.get(by)!r} 没有对应的目标时长，本记录不计 SLA"]}
    lines = [f"Target {_hours(target)} business hours" + (f" ({by} = {values.get(by)})" if by else "")
             + f" / 目标 {_hours(target)} 个工作小时" + (f"（{by} = {values.get(by)}）" if by else ""),
             f"Calendar {calendar.key or '24×7'} ({tz}) / 日历 {calendar.key or '全天候'}（{tz}）"]
    paused, due, listed, open_pause = timedelta(0), calendar.add(start, target), [], False
    for a, b in sorted(pauses, key=lambda ab: ab[0].timestamp()):
        a = max(a.astimezone(tz), start)
        counted = due is not None and a < due and not open_pause
        item = {"from": a, "to": b.astimezone(tz) if b else None, "counted": counted, "business_seconds": None}
        listed.append(item)
        if not counted:
            continue
        if b is None:
            open_pause, due = True, None
            lines.append(f"Paused since {a:%Y-%m-%d %H:%M}: the clock is stopped / {a:%Y-%m-%d %H:%M} 起暂停，计时停止")
            continue
        spent = calendar.between(a, b)
        item["business_seconds"] = _seconds(spent)
        paused += spent
        due = calendar.add(start, target + paused)
        lines.append(f"Paused {a:%Y-%m-%d %H:%M} → {b.astimezone(tz):%Y-%m-%d %H:%M}: due moves by {_hours(spent)} "
                     f"business hours / 暂停期间顺延 {_hours(spent)} 个工作小时")
    last = due or max([start] + [i["to"] or i["from"] for i in listed])
    crossed = [{"date": d, "name": calendar.holiday_name(d)} for d in calendar.holidays_between(start, last)]
    lines += [f"{h['date'].isoformat()} {h['name'] or ''}: not a working day / 非工作日".replace("  ", " ")
              for h in crossed]
    warn = warn_time(calendar, due, p.warn_before, start) if due else None
    escalations = escalation_times(p, due, calendar) if due else []
    if due:
        lines.append(f"Due {due:%Y-%m-%d %H:%M} / 截止 {due:%Y-%m-%d %H:%M}")
    if warn:
        lines.append(f"Warning at {warn:%Y-%m-%d %H:%M} / {warn:%Y-%m-%d %H:%M} 发出预警")
    lines += [f"Escalation level {e['level']} at {e['at']:%Y-%m-%d %H:%M} / "
              f"第 {e['level']} 级升级于 {e['at']:%Y-%m-%d %H:%M}" for e in escalations]
    return {**out, "applies": True, "target_seconds": _seconds(target), "due_at": due,
            "paused_seconds": _seconds(paused), "pauses": listed, "holidays": crossed, "warn_at": warn,
            "on_breach": list(p.on_breach), "escalations": escalations, "lines": lines}
