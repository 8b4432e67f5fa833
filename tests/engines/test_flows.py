"""Flows: definitions and their validation, every refusal of a transition, approvals."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from engines import flows
from engines.errors import DefinitionError, PermissionDenied, TransitionNotAllowed
from engines.expressions import NUMBER, TEXT, EvalContext, FieldSig

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def env():
    return {"customer": FieldSig(NUMBER), "resolution": FieldSig(TEXT), "amount": FieldSig(NUMBER),
            "status": FieldSig(TEXT), "severity": FieldSig(TEXT, options=("critical", "high", "medium", "low"))}


@pytest.fixture
def ctx():
    return EvalContext(now=datetime(2026, 3, 4, 10, tzinfo=SH), tz=SH)


def complaint_spec() -> dict:
    return {
        "key": "complaint_process", "entity": "ticket", "state_field": "status", "initial": "new",
        "states": [
            {"key": "new", "label": "待受理"},
            {"key": "assigned", "label": "已分派"},
            {"key": "in_progress", "label": "处理中", "on_exit": [{"notify": {"to": ["owner"]}}]},
            {"key": "waiting_customer", "label": "待客户回复"},
            {"key": "escalated", "label": "已升级"},
            {"key": "resolved", "label": "已解决", "on_enter": [{"survey": {"form": "satisfaction"}}]},
            {"key": "closed", "label": "已关闭", "final": True},
        ],
        "transitions": [
            {"key": "assign", "from": "new", "to": "assigned", "roles": ["supervisor"]},
            {"key": "accept", "from": ["new", "assigned"], "to": "in_progress", "roles": ["agent"],
             "actions": [{"set": {"responded_at": "NOW()"}}]},
            {"key": "wait", "from": "in_progress", "to": "waiting_customer"},
            {"key": "resume", "from": "waiting_customer", "to": "in_progress"},
            {"key": "resolve", "label": "解决", "from": ["in_progress", "escalated"], "to": "resolved",
             "roles": ["agent"], "require": ["resolution"], "condition": "not ISBLANK(customer)"},
            {"key": "escalate", "from": ["new", "assigned", "in_progress"], "to": "escalated",
             "actions": [{"assign": {"to": "role:supervisor"}}]},
            {"key": "approve_refund", "from": "resolved", "to": "closed",
             "approval": {"approvers": "role:supervisor", "mode": "any"}},
            {"key": "cancel", "from": "*", "to": "closed", "roles": ["supervisor"]},
        ],
        "slas": [{
            "key": "first_response", "start": {"enter": "new"}, "stop": {"enter": ["in_progress", "resolved"]},
            "target": {"by": "severity", "hours": {"critical": 2, "high": 8, "medium": 24, "low": 72}},
            "calendar": "cn_business_hours", "pause_in": ["waiting_customer"],
            "on_breach": [{"transition": "escalate"}], "warn_before": {"hours": 1},
        }],
    }


@pytest.fixture
def flow(env):
    return flows.FlowDef.from_spec(complaint_spec(), env, calendars={"cn_business_hours"})


READY = {"resolution": "refunded", "customer": 7}


def bilingual(text: str) -> bool:
    """中文 and English in one message."""
    return any("\u4e00" <= ch <= "\u9fff" for ch in text) and any(ch.isascii() and ch.isalpha() for ch in text)


@pytest.mark.parametrize("key, state, roles, admin, values, reason", [
    ("reopen", "closed", {"agent"}, False, {}, "unknown_transition"),        # no such transition
    ("accept", "resolved", {"agent"}, False, {}, "wrong_state"),             # not from this state
    ("accept", "resolved", set(), True, {}, "wrong_state"),                  # admins cannot skip states
    ("cancel", "closed", {"supervisor"}, False, {}, "wrong_state"),          # "*" never leaves a final state
    ("accept", None, {"agent"}, False, {}, "wrong_state"),                   # no state at all
    ("resolve", "in_progress", {"agent"}, False, {"customer": 7}, "missing_required"),  # no resolution
    ("resolve", "in_progress", {"agent"}, False, {"customer": 7, "resolution": "  "}, "missing_required"),  # blank
    ("resolve", "in_progress", {"agent"}, False, {"resolution": "done"}, "guard_false"),  # guard false
    ("resolve", "in_progress", set(), True, {"resolution": "done"}, "guard_false"),  # admins cannot skip guards
    ("resolve", "in_progress", {"viewer"}, False, {"resolution": "done"}, "guard_false"),  # guard + role: 409
    ("resolve", "in_progress", set(), True, {"customer": 7}, "missing_required"),  # admins still fill fields
])
def test_refusals(flow, ctx, key, state, roles, admin, values, reason):
    with pytest.raises(TransitionNotAllowed) as info:
        flows.check_transition(flow, key, state, roles, admin, values, ctx)
    error = info.value
    assert error.status == 409 and error.code == "transition_not_allowed"
    assert error.details["reason"] == reason
    assert bilingual(error.message)


def test_missing_required_lists_the_fields(flow, ctx):
    with pytest.raises(TransitionNotAllowed) as info:
        flows.check_transition(flow, "resolve", "escalated", {"agent"}, False, {}, ctx)
    assert info.value.details["fields"] == ["resolution"]
    assert info.value.details["reasons"] == ["missing_required", "guard_false"]
    assert "resolution" in info.value.message


def test_wrong_state_says_where_it_could_run(flow, ctx):
    with pytest.raises(TransitionNotAllowed) as info:
        flows.check_transition(flow, "accept", "resolved", {"agent"}, False, {}, ctx)
    assert info.value.details["from"] == ["new", "assigned"]
    assert "已解决" in info.value.message


@pytest.mark.parametrize("key, state, roles", [
    ("accept", "new", {"viewer"}),              # wrong role, everything else fine
    ("accept", "new", set()),                   # no role at all
    ("cancel", "in_progress", {"agent"}),       # "*" still checks roles
    ("resolve", "in_progress", {"supervisor"}),  # a guard that holds does not help the role
])
def test_only_the_role_is_wrong_is_permission_denied(flow, ctx, key, state, roles):
    with pytest.raises(PermissionDenied) as info:
        flows.check_transition(flow, key, state, roles, False, READY, ctx)
    assert info.value.status == 403 and info.value.code == "forbidden"
    assert info.value.details["reason"] == "role" and info.value.details["reasons"] == ["role"]


@pytest.mark.parametrize("key, state, roles, admin", [
    ("accept", "new", {"agent"}, False),                 # the right role
    ("accept", "assigned", {"agent", "viewer"}, False),  # one of several roles is enough
    ("accept", "new", set(), True),                      # admins bypass roles
    ("wait", "in_progress", set(), False),               # no roles: anyone who may edit
    ("resolve", "escalated", {"agent"}, False),          # required fields and guard satisfied
    ("cancel", "waiting_customer", {"supervisor"}, False),  # "*" from any non-final state
    ("cancel", "new", set(), True),                      # "*" for an admin
])
def test_allowed(flow, ctx, key, state, roles, admin):
    assert flows.check_transition(flow, key, state, roles, admin, READY, ctx).key == key


@pytest.mark.parametrize("amount, allowed", [
    (2000, True),    # the guard holds
    (1000, False),   # it does not
    (None, False),   # blank: a guard that is not true does not hold
])
def test_guards_are_evaluated_with_the_record(env, ctx, amount, allowed):
    spec = _with(complaint_spec(), "transitions.resolve.condition", "amount > 1000")
    flow = flows.FlowDef.from_spec(spec, env)
    values = {"resolution": "refund", "amount": amount}
    if allowed:
        assert flows.check_transition(flow, "resolve", "in_progress", {"agent"}, False, values, ctx)
    else:
        with pytest.raises(TransitionNotAllowed) as info:
            flows.check_transition(flow, "resolve", "in_progress", {"agent"}, False, values, ctx)
        assert info.value.details["condition"] == "amount > 1000"


def test_available_transitions(flow):
    def keys(state, roles, admin=False):
        return [t.key for t in flows.available_transitions(flow, state, roles, admin)]

    assert keys("new", {"agent"}) == ["accept", "escalate"]
    assert keys("new", {"supervisor"}) == ["assign", "escalate", "cancel"]
    assert keys("new", set(), admin=True) == ["assign", "accept", "escalate", "cancel"]
    assert keys("closed", {"supervisor"}, admin=True) == []


def test_plan_transition(flow):
    resolve = flow.transitions["resolve"]
    plan = flows.plan_transition(flow, resolve, "in_progress")
    assert plan["exit_actions"] == [{"notify": {"to": ["owner"]}}]
    assert plan["enter_actions"] == [{"survey": {"form": "satisfaction"}}]
    assert plan["sla_events"] == {"first_response": ["stop"]}
    assert flows.plan_transition(flow, flow.transitions["wait"], "in_progress")["sla_events"] == {
        "first_response": ["pause"]}


def test_from_spec_builds_the_model(flow):
    assert flow.initial == "new" and flow.states["closed"].final
    assert flow.transitions["cancel"].sources is None
    assert flow.transitions["approve_refund"].approval.approvers == ("role:supervisor",)
    assert flow.transitions["resolve"].label == "解决"
    assert [p.key for p in flow.slas] == ["first_response"]


def test_guards_need_field_types(ctx):
    bare = flows.FlowDef.from_spec(complaint_spec())
    with pytest.raises(DefinitionError):
        flows.check_transition(bare, "resolve", "in_progress", {"agent"}, False, READY, ctx)
    assert flows.check_transition(bare, "accept", "new", {"agent"}, False, {}, ctx).key == "accept"


def _with(spec: dict, path: str, value) -> dict:
    """A copy of ``spec`` with one item changed: 'transitions.resolve.condition' or 'initial'."""
    parts = path.split(".")
    if len(parts) == 1:
        return {**spec, path: value}
    kind, key, attr = parts
    spec[kind] = [{**item, attr: value} if item.get("key") == key else item for item in spec[kind]]
    return spec


@pytest.mark.parametrize("path, value, location, level", [
    ("initial", "draft", "initial", "error"),                                       # initial not a state
    ("transitions.accept.from", ["new", "limbo"], "transitions[1].from", "error"),  # unknown source state
    ("transitions.accept.to", "limbo", "transitions[1].to", "error"),               # unknown target state
    ("transitions.wait.key", "accept", "transitions[2].key", "error"),              # duplicate key
    ("states.assigned.key", "new", "states[1].key", "error"),                       # duplicate state
    ("transitions.approve_refund.from", "closed", "transitions[6].from", "error"),  # leaves a final state
    ("transitions.resolve.require", ["resolutoin"], "transitions[4].require", "error"),  # unknown field
    ("transitions.resolve.condition", "amount + 1", "transitions[4].condition", "error"),  # not true/false
    ("transitions.resolve.condition", "amout > 1", "transitions[4].condition", "error"),   # unknown field
    ("transitions.approve_refund.approval", {"approvers": "role:x", "mode": "most"},
     "transitions[6].approval.mode", "error"),                                      # unknown approval mode
    ("transitions.approve_refund.approval", {"mode": "all"}, "transitions[6].approval", "error"),  # nobody
    ("transitions.assign.to", "new", "states[1]", "warning"),                       # assigned unreachable
    ("transitions.wait.to", "escalated", "states[3]", "warning"),                   # waiting_customer unreachable
    ("states.escalated.final", True, "transitions[4].from", "error"),               # resolve leaves a final state
    ("slas.first_response.calendar", "nine_to_five", "slas[0].calendar", "error"),  # unknown calendar
    ("slas.first_response.pause_in", ["napping"], "slas[0].pause_in", "error"),     # unknown SLA state
    ("slas.first_response.on_breach", [{"transition": "panic"}], "slas[0].on_breach", "error"),  # unknown transition
])
def test_validate_flow(env, path, value, location, level):
    problems = flows.validate_flow(_with(complaint_spec(), path, value), env, {"cn_business_hours"})
    # the first problem is the one the case is about; some cases have consequences too (a state
    # renamed away leaves the transitions that named it dangling)
    assert (problems[0]["location"], problems[0]["level"]) == (location, level), problems
    if level == "warning":
        assert all(p["level"] == "warning" for p in problems)
    assert bilingual(problems[0]["message"])


def test_dead_ends_are_warned(env):
    spec = complaint_spec()
    spec["transitions"] = [t for t in spec["transitions"] if t["key"] not in ("cancel", "approve_refund")]
    spec["states"] = [s for s in spec["states"] if s["key"] != "closed"]
    problems = flows.validate_flow(spec, env, {"cn_business_hours"})
    assert [(p["location"], p["level"]) for p in problems] == [("states[5]", "warning")]
    assert "resolved" in problems[0]["message"]


def test_guard_errors_carry_their_position(env):
    spec = _with(complaint_spec(), "transitions.resolve.condition", "customer > 0 and amout > 1")
    [problem] = flows.validate_flow(spec, env, {"cn_business_hours"})
    assert problem["position"] == len("customer > 0 and ")


def test_a_valid_flow_has_no_problems(env):
    assert flows.validate_flow(complaint_spec(), env, {"cn_business_hours"}) == []
    assert flows.validate_flow(complaint_spec(), None) == []  # no env, no calendars: references unchecked


def test_from_spec_refuses_errors_but_not_warnings(env):
    with pytest.raises(DefinitionError) as info:
        flows.FlowDef.from_spec(_with(complaint_spec(), "initial", "draft"), env)
    assert info.value.details[0]["location"] == "initial"
    unreachable = flows.FlowDef.from_spec(_with(complaint_spec(), "transitions.assign.to", "new"), env)
    assert "assigned" in unreachable.states


@pytest.mark.parametrize("mode, approvers, decisions, outcome", [
    ("any", {"li", "wang"}, {}, "pending"),                                     # nobody decided yet
    ("any", {"li", "wang"}, {"li": "approve"}, "approved"),                     # 或签: one approval settles it
    ("any", {"li", "wang"}, {"wang": "reject"}, "rejected"),                    # 或签: so does one rejection
    ("any", {"li", "wang"}, [("li", "approve"), ("wang", "reject")], "approved"),  # the first decision wins
    ("any", {"li"}, {"zhao": "approve"}, "pending"),                            # not an approver: ignored
    ("all", {"li", "wang"}, {"li": "approve"}, "pending"),                      # 会签: waiting for wang
    ("all", {"li", "wang"}, {"li": "approve", "wang": "approved"}, "approved"),  # 会签: everyone approved
    ("all", {"li", "wang"}, {"li": "approve", "wang": "reject"}, "rejected"),   # 会签: one rejection rejects
    ("all", {"li", "wang"}, {"li": True, "zhao": True}, "pending"),             # an outsider does not count
    ("all", set(), {"li": "approve"}, "pending"),                               # no approvers: never settled
    ("all", {1, 2}, {1: "approve", 2: "approve"}, "approved"),                  # user ids work too
])
def test_approval_outcome(mode, approvers, decisions, outcome):
    assert flows.approval_outcome(mode, approvers, decisions) == outcome


def test_approval_outcome_refuses_nonsense():
    with pytest.raises(ValueError):
        flows.approval_outcome("most", {"li"}, {})
    with pytest.raises(ValueError):
        flows.approval_outcome("any", {"li"}, {"li": "maybe"})
