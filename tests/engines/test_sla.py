"""SLA clocks: targets, pauses that really stop the clock, statuses, warnings, escalations, explanations."""
from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from engines.calendars import BusinessCalendar
from engines.sla import (
    SlaClock,
    SlaPolicy,
    escalation_times,
    explain,
    parse_duration,
    plan_timers,
    policy_events_for_transition,
    target_for,
    validate_policy,
)

SH = ZoneInfo("Asia/Shanghai")
CN = BusinessCalendar.from_spec({
    "key": "cn_business_hours", "timezone": "Asia/Shanghai", "weekdays": ["mon", "tue", "wed", "thu", "fri"],
    "hours": ["09:00-12:00", "13:30-18:00"], "holidays": "CN", "extra_holidays": ["2026-12-31"]})
RESOLUTION = {
    "key": "resolution",
    "start": {"enter": "new"},
    "stop": {"enter": ["resolved", "closed"]},
    "target": {"by": "severity", "hours": {"critical": 2, "high": 8, "medium": 24, "low": 72}},
    "calendar": "cn_business_hours",
    "pause_in": ["waiting_customer"],
    "on_breach": [{"transition": "escalate"}, {"notify": {"to": ["role:supervisor"], "message": "SLA {number}"}}],
    "warn_before": {"hours": 1},
    "escalations": [
        {"after": {"hours": 0}, "actions": [{"notify": {"to": ["role:team_lead"]}}]},
        {"after": {"hours": 4}, "actions": [{"notify": {"to": ["role:department_head"]}}]},
    ],
}
HIGH = {"severity": "high"}


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


def clock(events, values=HIGH, policy=RESOLUTION, calendar=CN) -> SlaClock:
    made = SlaClock.for_policy(policy, values, calendar, events)
    assert made is not None
    return made


def events_for(created_at, pauses, stop=None):
    out = [(created_at, "start")]
    for a, b in pauses:
        out.append((a, "pause"))
        if b is not None:
            out.append((b, "resume"))
    if stop is not None:
        out.append((stop, "stop"))
    return out


@pytest.mark.parametrize("target, values, expected", [
    ({"hours": 24}, {}, timedelta(hours=24)),                              # fixed hours
    ({"minutes": 10}, {}, timedelta(minutes=10)),                          # fixed minutes (store rule: 10 min)
    ({"hours": 1, "minutes": 30}, {}, timedelta(minutes=90)),              # both, summed
    ({"by": "severity", "hours": {"critical": 2, "low": 72}}, {"severity": "critical"}, timedelta(hours=2)),
    ({"by": "severity", "minutes": {"critical": 10}}, {"severity": "critical"}, timedelta(minutes=10)),
    ({"by": "severity", "hours": {"critical": 2}}, {"severity": "low"}, None),   # no entry: no SLA
    ({"by": "severity", "hours": {"critical": 2}}, {}, None),                    # no value: no SLA
    ({"by": "tier", "hours": {"1": 4}}, {"tier": 1}, timedelta(hours=4)),        # numbers match their text
])
def test_target_for(target, values, expected):
    assert target_for({**RESOLUTION, "target": target}, values) == expected


@pytest.mark.parametrize("spec, expected", [
    ({"hours": 2}, timedelta(hours=2)),        # hours
    ({"minutes": 1.5}, timedelta(seconds=90)),  # fractions
    ({"hours": -1}, None),                     # negative
    ({"days": 1}, None),                       # unknown unit
    ({"hours": True}, None),                   # a boolean is not a number
    ({}, None),                                # empty
    ("2h", None),                              # not a mapping
])
def test_parse_duration(spec, expected):
    assert parse_duration(spec) == expected


@pytest.mark.parametrize("from_state, to_state, expected", [
    (None, "new", ["start"]),                          # created in the start state
    ("new", "in_progress", []),                        # nothing to do with this SLA
    ("in_progress", "waiting_customer", ["pause"]),    # entering a pause state
    ("waiting_customer", "in_progress", ["resume"]),   # leaving it
    ("waiting_customer", "resolved", ["resume", "stop"]),  # leaving the pause straight into a stop state
    ("in_progress", "resolved", ["stop"]),             # entering a stop state
    ("closed", "new", ["start"]),                      # reopened: a new cycle
    ("waiting_customer", "waiting_customer", []),      # staying put changes nothing
    ("waiting_customer", "waiting_parts", []),         # from one pause state into another: still paused
])
def test_policy_events_for_transition(from_state, to_state, expected):
    policy = {**RESOLUTION, "pause_in": ["waiting_customer", "waiting_parts"]}
    assert policy_events_for_transition(policy, from_state, to_state) == expected


START = sh(2026, 3, 4, 10, 30)  # a Wednesday; high = 8 business hours -> due Thursday 11:00


@pytest.mark.parametrize("events, now, status, due_at, remaining_h", [
    # running, 1 business hour used
    ([(START, "start")], sh(2026, 3, 4, 11, 30), "running", sh(2026, 3, 5, 11), 7),
    # breached on the minute it is due
    ([(START, "start")], sh(2026, 3, 5, 11), "breached", sh(2026, 3, 5, 11), 0),
    # breached for an hour
    ([(START, "start")], sh(2026, 3, 5, 12), "breached", sh(2026, 3, 5, 11), -1),
    # met: stopped in time
    ([(START, "start"), (sh(2026, 3, 4, 15), "stop")], sh(2026, 3, 9, 9), "met", sh(2026, 3, 5, 11), 5),
    # met: stopped exactly when due
    ([(START, "start"), (sh(2026, 3, 5, 11), "stop")], sh(2026, 3, 9, 9), "met", sh(2026, 3, 5, 11), 0),
    # breached and stopped later: stays breached
    ([(START, "start"), (sh(2026, 3, 5, 14), "stop")], sh(2026, 3, 9, 9), "breached", sh(2026, 3, 5, 11), -1.5),
    # paused: no due time while the clock stands still, remaining frozen
    ([(START, "start"), (sh(2026, 3, 4, 11), "pause")], sh(2026, 3, 6, 17), "paused", None, 7.5),
    # paused only once already due: too late, breached
    ([(START, "start"), (sh(2026, 3, 5, 11), "pause")], sh(2026, 3, 9, 9), "breached", sh(2026, 3, 5, 11), 0),
    # paused 2 business hours, resumed: due moves by 2 business hours
    ([(START, "start"), (sh(2026, 3, 4, 11), "pause"), (sh(2026, 3, 4, 14, 30), "resume")],
     sh(2026, 3, 4, 15), "running", sh(2026, 3, 5, 14, 30), 7),
    # stopped while paused: met, no due time was running
    ([(START, "start"), (sh(2026, 3, 4, 11), "pause"), (sh(2026, 3, 6, 9), "stop")], sh(2026, 3, 9, 9), "met", None, 7.5),
    # events after now are ignored
    ([(START, "start"), (sh(2026, 3, 4, 11), "stop")], sh(2026, 3, 4, 10, 45), "running", sh(2026, 3, 5, 11), 7.75),
    # reopened after a stop: a fresh cycle of 8 hours
    ([(START, "start"), (sh(2026, 3, 4, 11), "stop"), (sh(2026, 3, 9, 9), "start")], sh(2026, 3, 9, 10),
     "running", sh(2026, 3, 10, 9, 30), 7),
    # a second start while running is ignored
    ([(START, "start"), (sh(2026, 3, 4, 15), "start")], sh(2026, 3, 4, 16), "running", sh(2026, 3, 5, 11), 4),
])
def test_status(events, now, status, due_at, remaining_h):
    got = clock(events).status(now)
    assert got["status"] == status
    assert got["due_at"] == due_at
    assert got["remaining_seconds"] == remaining_h * 3600
    assert got["key"] == "resolution"


def test_status_fields_and_before_start():
    c = clock([(START, "start"), (sh(2026, 3, 4, 11), "pause"), (sh(2026, 3, 4, 14, 30), "resume"),
               (sh(2026, 3, 5, 9), "stop")])
    assert c.status(sh(2026, 3, 4, 9)) is None
    got = c.status(sh(2026, 3, 6, 9))
    assert got["started_at"] == START and got["stopped_at"] == sh(2026, 3, 5, 9)
    assert got["paused_seconds"] == 2 * 3600 and got["breached_at"] is None
    assert got["target_seconds"] == 8 * 3600


def test_a_ticket_paused_over_a_holiday_weekend_does_not_breach_and_explain_agrees():
    # Thursday 10:00, 8 business hours. Waiting for the customer from Thursday 16:00 to Monday
    # 11:00: Friday is the Mid-Autumn Festival, then the weekend. Without the pause it would be
    # due Monday 10:30; the pause moves it by the 4 business hours it covered.
    created, pause = sh(2026, 9, 24, 10), (sh(2026, 9, 24, 16), sh(2026, 9, 28, 11))
    c = clock(events_for(created, [pause]))
    assert clock([(created, "start")]).status(sh(2026, 9, 28, 10, 30))["status"] == "breached"
    during = c.status(sh(2026, 9, 28, 10, 30))
    assert during["status"] == "paused" and during["breached_at"] is None
    after = c.status(sh(2026, 9, 28, 11, 30))
    assert after["status"] == "running"
    assert after["due_at"] == sh(2026, 9, 28, 16)
    assert after["paused_seconds"] == 4 * 3600

    why = explain(RESOLUTION, HIGH, created, CN, [pause])
    assert why["due_at"] == after["due_at"]
    assert why["pauses"][0]["business_seconds"] == 4 * 3600
    assert [h["date"].isoformat() for h in why["holidays"]] == ["2026-09-25"]
    assert "中秋" in why["holidays"][0]["name"]
    assert why["warn_at"] == after["warn_at"] == sh(2026, 9, 28, 15)
    assert any("2026-09-28 16:00" in line for line in why["lines"])


def test_explain_over_the_golden_week():
    # Sep 30 15:00, medium = 24 business hours: 3 h that day, the Golden Week off, 1 h on Oct 8
    # until the customer goes silent at 10:00; back on Oct 10 (the Saturday worked instead) at
    # 10:00 with 20 h left: 6.5 that Saturday, 7.5 on Monday, 6 on Tuesday -> Oct 13 16:30.
    created, pause = sh(2026, 9, 30, 15), (sh(2026, 10, 8, 10), sh(2026, 10, 10, 10))
    why = explain(RESOLUTION, {"severity": "medium"}, created, CN, [pause])
    status = clock(events_for(created, [pause]), {"severity": "medium"}).status(sh(2026, 10, 10, 10, 1))
    assert why["due_at"] == status["due_at"] == sh(2026, 10, 13, 16, 30)
    assert [h["date"].day for h in why["holidays"]] == [1, 2, 5, 6, 7]


PAUSE_PATTERNS = [
    [],                                                                   # never paused
    [(sh(2026, 9, 24, 16), sh(2026, 9, 28, 11))],                         # over a holiday weekend
    [(sh(2026, 9, 24, 11, 45), sh(2026, 9, 24, 14))],                     # over lunch
    [(sh(2026, 9, 24, 20), sh(2026, 9, 28, 8))],                          # entirely off hours: no shift
    [(sh(2026, 9, 24, 11), sh(2026, 9, 24, 12)), (sh(2026, 9, 28, 9), sh(2026, 9, 30, 17))],  # twice
    [(sh(2026, 9, 29, 10), sh(2026, 10, 9, 10))],                         # through the Golden Week
]


@pytest.mark.parametrize("pauses", PAUSE_PATTERNS)
@pytest.mark.parametrize("severity", ["critical", "high", "medium", "low"])
def test_explain_and_clock_always_agree(pauses, severity):
    created = sh(2026, 9, 24, 10)
    values = {"severity": severity}
    why = explain(RESOLUTION, values, created, CN, pauses)
    c = clock(events_for(created, pauses), values)
    later = sh(2027, 6, 1)
    status = c.status(later)
    assert status["due_at"] == why["due_at"]
    assert status["status"] == "breached" and status["breached_at"] == why["due_at"]
    if not any(p["counted"] is False for p in why["pauses"]):
        assert status["paused_seconds"] == why["paused_seconds"]


def test_explain_with_an_open_pause_and_without_a_target():
    why = explain(RESOLUTION, HIGH, sh(2026, 3, 4, 10), CN, [(sh(2026, 3, 4, 11), None)])
    assert why["due_at"] is None and why["escalations"] == [] and why["warn_at"] is None
    none = explain(RESOLUTION, {"severity": "unknown"}, sh(2026, 3, 4, 10), CN)
    assert none["applies"] is False and none["due_at"] is None


@pytest.mark.parametrize("due_at, warn, expected", [
    (sh(2026, 3, 5, 11), {"hours": 1}, sh(2026, 3, 5, 10)),          # same morning
    (sh(2026, 3, 5, 14), {"hours": 1}, sh(2026, 3, 5, 11, 30)),      # back over lunch
    (sh(2026, 3, 9, 9, 30), {"hours": 1}, sh(2026, 3, 6, 17, 30)),   # back over the weekend
    (sh(2026, 3, 4, 11), {"hours": 4}, START),                       # never before the start
])
def test_warn_time(due_at, warn, expected):
    # a target that puts the due time where the case wants it, started Wednesday 10:30
    target = CN.between(START, due_at)
    policy = {**RESOLUTION, "target": {"minutes": target.total_seconds() / 60}, "warn_before": warn}
    status = clock([(START, "start")], {}, policy).status(START)
    assert status["due_at"] == due_at
    assert status["warn_at"] == expected


def test_escalation_levels_fire_after_the_breach_in_business_time():
    due = sh(2026, 9, 30, 16)
    levels = escalation_times(RESOLUTION, due, CN)
    assert [(e["level"], e["at"]) for e in levels] == [
        (1, sh(2026, 9, 30, 16)),   # at the breach: the team lead
        (2, sh(2026, 10, 8, 11)),   # 4 business hours later, after the Golden Week: the department head
    ]
    assert levels[1]["actions"] == [{"notify": {"to": ["role:department_head"]}}]


def test_plan_timers():
    c = clock([(START, "start")])
    running = plan_timers(RESOLUTION, c.status(sh(2026, 3, 4, 11)), CN)
    assert [(t["kind"], t["at"]) for t in running] == [
        ("warn", sh(2026, 3, 5, 10)), ("breach", sh(2026, 3, 5, 11)),
        ("escalate", sh(2026, 3, 5, 11)), ("escalate", sh(2026, 3, 5, 16, 30))]
    assert running[1]["actions"] == RESOLUTION["on_breach"]
    breached = plan_timers(RESOLUTION, c.status(sh(2026, 3, 5, 12)), CN)
    assert [t["kind"] for t in breached] == ["escalate", "escalate"]
    assert plan_timers(RESOLUTION, None, CN) == []
    met = clock([(START, "start"), (sh(2026, 3, 4, 11), "stop")]).status(sh(2026, 3, 5, 12))
    assert plan_timers(RESOLUTION, met, CN) == []


def test_always_calendar_and_policy_objects():
    policy = SlaPolicy.from_spec({**RESOLUTION, "target": {"minutes": 10}, "calendar": None})
    c = SlaClock.for_policy(policy, {}, BusinessCalendar.always("Asia/Shanghai"), [(sh(2026, 10, 1, 23, 55), "start")])
    assert c.status(sh(2026, 10, 2, 0, 1))["due_at"] == sh(2026, 10, 2, 0, 5)
    assert SlaClock.for_policy(RESOLUTION, {"severity": "none"}, CN, []) is None
    with pytest.raises(ValueError, match="kind"):
        SlaClock("x", timedelta(hours=1), CN, [(START, "begin")])


STATES = {"new", "in_progress", "waiting_customer", "resolved", "closed"}
ENV = {"severity": SimpleNamespace(type="text", options=("critical", "high", "medium", "low"))}


@pytest.mark.parametrize("change, location", [
    ({"start": {"enter": "nowhere"}}, "start.enter"),                    # unknown start state
    ({"stop": {}}, "stop.enter"),                                        # no stop state
    ({"pause_in": ["napping"]}, "pause_in"),                             # unknown pause state
    ({"target": {"days": 3}}, "target"),                                 # unknown unit
    ({"target": {"by": "sevrity", "hours": {"high": 8}}}, "target.by"),  # unknown field
    ({"target": {"by": "severity", "hours": {"high": "8h"}}}, "target.hours"),  # not a number
    ({"target": {"by": "severity"}}, "target"),                          # no table
    ({"calendar": "nine_to_five"}, "calendar"),                          # unknown calendar
    ({"warn_before": {"hours": -1}}, "warn_before"),                     # negative warning
    ({"escalations": [{"after": {"hours": 4}, "actions": [{"notify": {}}]},
                      {"after": {"hours": 1}, "actions": [{"notify": {}}]}]}, "escalations[1].after"),  # out of order
    ({"escalations": [{"after": {"hours": 4}}]}, "escalations[0].actions"),  # no actions
    ({"on_breach": [{"transition": "panic"}]}, "on_breach"),             # unknown transition
    ({"target": {"by": "severity", "hours": {"hgih": 8}}}, "target.hours"),  # not an option of the field
    ({"start": "nowhere"}, "start.enter"),                               # shorthand, unknown state
])
def test_validate_policy(change, location):
    problems = validate_policy({**RESOLUTION, **change}, states=STATES, calendars={"cn_business_hours"},
                               field_env=ENV, transitions={"escalate"})
    assert [p["location"] for p in problems] == [location], problems


def test_valid_policy_has_no_problems():
    assert validate_policy(RESOLUTION, states=STATES, calendars={"cn_business_hours"},
                           field_env=ENV, transitions={"escalate"}) == []
    shorthand = {**RESOLUTION, "start": "new", "stop": ["resolved"]}
    assert validate_policy(shorthand, states=STATES) == []
    assert SlaPolicy.from_spec(shorthand).start_states == ("new",)
