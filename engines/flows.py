"""Flow definitions and the state machine: which transition may run, from where, by whom, and why not.

Owns the ``flows:`` item of an app: its typed model (``FlowDef``, ``State``, ``Transition``,
``Approval``), its validation (``validate_flow``: states, transitions, guards type-checked as
booleans through ``engines.expressions``, required fields, SLA references), the run-time decision
``check_transition`` (refusals as ``TransitionNotAllowed`` 409, or ``PermissionDenied`` 403 when only
the role is wrong), ``available_transitions``, the effects a transition implies (``plan_transition``)
and the outcome of an approval (``approval_outcome``).

Does not own running actions, writing records, storing instances or approvals, resolving
``role:…`` references to users, SLA arithmetic (``engines.sla``) or the expression language.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import DefinitionError, JimuError, PermissionDenied, TransitionNotAllowed
from .expressions import BOOL, compile_expression
from .sla import SlaPolicy, policy_events_for_transition, validate_policy

ANY_STATE = "*"
APPROVAL_MODES = ("any", "all")


@dataclass(frozen=True)
class State:
    key: str
    label: str
    final: bool = False
    on_enter: tuple = ()
    on_exit: tuple = ()


@dataclass(frozen=True)
class Approval:
    approvers: tuple[str, ...]
    mode: str = "any"


@dataclass(frozen=True)
class Transition:
    key: str
    label: str
    sources: tuple[str, ...] | None  # None: from any state that is not final ("*")
    to: str
    roles: frozenset[str] = frozenset()
    condition: str | None = None
    require: tuple[str, ...] = ()
    actions: tuple = ()
    approval: Approval | None = None
    guard: Any = field(default=None, repr=False, compare=False)  # the compiled condition

    def role_allows(self, user_roles: Iterable[str], is_admin: bool) -> bool:
        return is_admin or not self.roles or bool(self.roles & set(user_roles))


@dataclass(frozen=True)
class FlowDef:
    key: str
    entity: str
    state_field: str
    initial: str
    states: Mapping[str, State]
    transitions: Mapping[str, Transition]
    slas: tuple[SlaPolicy, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], field_env: Mapping[str, Any] | None = None,
                  *, calendars: Collection[str] | None = None) -> FlowDef:
        """Build from a ``flows:`` item; raises DefinitionError listing every error (not warnings).

        With ``field_env`` (field key -> FieldSig) guards are compiled and can be checked at run time.
        """
        problems, guards = _check(spec, field_env, calendars)
        errors = [p for p in problems if p["level"] == "error"]
        if errors:
            raise DefinitionError(f"Invalid flow {spec.get('key')!r} / 流程定义无效", errors)
        states = {s["key"]: State(key=s["key"], label=str(s.get("label") or s["key"]),
                                  final=bool(s.get("final", False)), on_enter=tuple(s.get("on_enter") or ()),
                                  on_exit=tuple(s.get("on_exit") or ())) for s in spec["states"]}
        transitions = {}
        for i, t in enumerate(spec.get("transitions") or []):
            approval = t.get("approval")
            transitions[t["key"]] = Transition(
                key=t["key"], label=str(t.get("label") or t["key"]),
                sources=None if t.get("from") == ANY_STATE else _names(t.get("from")),
                to=t["to"], roles=frozenset(t.get("roles") or ()), condition=t.get("condition") or None,
                require=tuple(t.get("require") or ()), actions=tuple(t.get("actions") or ()),
                approval=Approval(_names(approval.get("approvers")), approval.get("mode", "any"))
                if approval else None,
                guard=guards.get(i))
        return cls(key=spec["key"], entity=spec["entity"], state_field=spec["state_field"],
                   initial=spec["initial"], states=states, transitions=transitions,
                   slas=tuple(SlaPolicy.from_spec(s) for s in spec.get("slas") or []), raw=spec)

    def label_of(self, state: str | None) -> str:
        found = self.states.get(state) if state is not None else None
        return found.label if found else str(state)

    def leaves_from(self, transition: Transition, state: str | None) -> bool:
        """Whether ``transition`` starts from ``state``."""
        if transition.sources is None:
            return state in self.states and not self.states[state].final
        return state in transition.sources


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list | tuple) else ()


def _check(spec: Any, env: Mapping[str, Any] | None,
           calendars: Collection[str] | None) -> tuple[list[dict], dict[int, Any]]:
    out: list[dict] = []
    guards: dict[int, Any] = {}

    def add(location: str, message: str, level: str = "error", **extra: Any) -> None:
        out.append({"location": location, "message": message, "level": level, **extra})

    if not isinstance(spec, Mapping):
        add("", "a flow must be an object / 流程必须是对象")
        return out, guards
    for name in ("key", "entity", "state_field"):
        if not isinstance(spec.get(name), str) or not spec.get(name):
            add(name, f"{name} is required / 缺少 {name}")
    if env is not None and isinstance(spec.get("state_field"), str) and spec["state_field"] not in env:
        add("state_field", f"the entity has no field {spec['state_field']!r} / 实体没有字段 {spec['state_field']!r}",
            "warning")
    states: dict[str, dict] = {}
    index: dict[str, int] = {}
    raw_states = spec.get("states")
    if not isinstance(raw_states, list) or not raw_states:
        add("states", "a flow needs at least one state / 流程至少需要一个状态")
        raw_states = []
    for i, s in enumerate(raw_states):
        key = s.get("key") if isinstance(s, Mapping) else None
        if not isinstance(key, str) or not key:
            add(f"states[{i}].key", "a state needs a key / 状态缺少 key")
        elif key in states:
            add(f"states[{i}].key", f"duplicate state {key!r} / 状态 {key!r} 重复")
        else:
            states[key], index[key] = s, i
    final = {k for k, s in states.items() if s.get("final")}
    initial = spec.get("initial")
    if initial not in states:
        add("initial", f"initial state {initial!r} is not one of the states / 初始状态 {initial!r} 不存在")
    elif initial in final:
        add("initial", f"initial state {initial!r} is final: nothing can happen / 初始状态不应是终止状态", "warning")
    seen: set[str] = set()
    edges: list[tuple[Iterable[str], str]] = []
    outgoing: set[str] = set()
    raw_transitions = spec.get("transitions") or []
    if not isinstance(raw_transitions, list):
        add("transitions", "transitions must be a list / transitions 必须是列表")
        raw_transitions = []
    for i, t in enumerate(raw_transitions):
        where = f"transitions[{i}]"
        if not isinstance(t, Mapping):
            add(where, "a transition must be an object / 流转必须是对象")
            continue
        key = t.get("key")
        if not isinstance(key, str) or not key:
            add(f"{where}.key", "a transition needs a key / 流转缺少 key")
        elif key in seen:
            add(f"{where}.key", f"duplicate transition {key!r} / 流转 {key!r} 重复")
        seen.add(key)
        raw_from = t.get("from")
        sources = [k for k in states if k not in final] if raw_from == ANY_STATE else list(_names(raw_from))
        if raw_from != ANY_STATE and not sources:
            add(f"{where}.from", "from needs a state, a list of states or '*' / from 必须是状态、状态列表或 '*'")
        for name in [] if raw_from == ANY_STATE else sources:
            if name not in states:
                add(f"{where}.from", f"unknown state {name!r} / 未知状态 {name!r}")
            elif name in final:
                add(f"{where}.from", f"state {name!r} is final: no transition may leave it / 终止状态 {name!r} 不能再流转")
        if t.get("to") not in states:
            add(f"{where}.to", f"unknown state {t.get('to')!r} / 未知状态 {t.get('to')!r}")
        else:
            edges.append((sources, t["to"]))
            outgoing.update(sources)
        roles = t.get("roles")
        if roles is not None and (not isinstance(roles, list) or not all(isinstance(r, str) for r in roles)):
            add(f"{where}.roles", "roles must be a list of role keys / roles 必须是角色列表")
        require = t.get("require") or []
        if not isinstance(require, list):
            add(f"{where}.require", "require must be a list of fields / require 必须是字段列表")
            require = []
        for name in require:
            if env is not None and name not in env:
                add(f"{where}.require", f"unknown field {name!r} / 未知字段 {name!r}")
        condition = t.get("condition")
        if condition not in (None, "") and not isinstance(condition, str):
            add(f"{where}.condition", "condition must be an expression / 条件必须是表达式")
        elif condition and env is not None:
            try:
                guards[i] = compile_expression(condition, env, expect=BOOL)
            except DefinitionError as exc:
                add(f"{where}.condition", exc.message, position=getattr(exc, "position", None))
        approval = t.get("approval")
        if approval is not None:
            if not isinstance(approval, Mapping) or not _names(approval.get("approvers")):
                add(f"{where}.approval", "an approval needs approvers / 审批需要指定审批人")
            elif approval.get("mode", "any") not in APPROVAL_MODES:
                add(f"{where}.approval.mode", "mode must be 'any' or 'all' / 审批方式必须是 any 或 all")
    if initial in states:
        reached, frontier = {initial}, [initial]
        while frontier:
            here = frontier.pop()
            for sources, to in edges:
                if here in sources and to not in reached:
                    reached.add(to)
                    frontier.append(to)
        for key in states:
            if key not in reached:
                add(f"states[{index[key]}]", f"state {key!r} cannot be reached from {initial!r} / 状态 {key!r} 无法到达", "warning")
            elif key not in final and key not in outgoing:
                add(f"states[{index[key]}]", f"state {key!r} has no way out and is not final / 状态 {key!r} 没有出口也不是终止状态",
                    "warning")
    sla_keys: set[str] = set()
    for i, sla in enumerate(spec.get("slas") or []):
        key = sla.get("key") if isinstance(sla, Mapping) else None
        if key is not None and key in sla_keys:
            add(f"slas[{i}].key", f"duplicate SLA {key!r} / SLA {key!r} 重复")
        sla_keys.add(key)
        for p in validate_policy(sla, states=states, calendars=calendars, field_env=env, transitions=seen):
            add(f"slas[{i}].{p['location']}".rstrip("."), p["message"])
    return out, guards


def validate_flow(spec: Any, field_env: Mapping[str, Any] | None,
                  calendars: Collection[str] | None = None) -> list[dict]:
    """Every problem of a ``flows:`` item: ``{"location", "message", "level"[, "position"]}``.

    ``level`` is ``error`` (refuse the flow) or ``warning`` (unreachable or dead-end states).
    ``field_env`` maps field keys to FieldSig (None skips field and guard checks); ``calendars`` is
    the set of the app's calendar keys (None skips that check).
    """
    return _check(spec, field_env, calendars)[0]


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | tuple | dict | set) and not value


def _guard_holds(flow: FlowDef, t: Transition, values: Mapping[str, Any], ctx: Any) -> tuple[bool, str | None]:
    if not t.condition:
        return True, None
    if t.guard is None:
        raise DefinitionError(f"flow {flow.key!r} was built without field types: its guards cannot run / "
                              "流程缺少字段定义，无法判断条件",
                              [{"location": f"transitions.{t.key}.condition", "message": "not compiled"}])
    try:
        return t.guard.evaluate(values, ctx) is True, None
    except JimuError as exc:  # a guard that cannot be evaluated does not hold
        return False, exc.message


def check_transition(flow: FlowDef, transition_key: str, current_state: str | None, user_roles: Iterable[str],
                     is_admin: bool, values: Mapping[str, Any], ctx: Any) -> Transition:
    """The transition if it may run now; otherwise raises why not.

    Order: unknown transition, wrong state, then required fields, guard and role together; a refusal
    where only the role is wrong is ``PermissionDenied`` (403), any other ``TransitionNotAllowed``
    (409) whose ``details["reason"]`` is the first failing check and ``details["reasons"]`` all of them.
    Admins bypass roles, never states, required fields or guards.
    """
    t = flow.transitions.get(transition_key)
    if t is None:
        raise TransitionNotAllowed(
            f"Unknown transition {transition_key!r} in flow {flow.key!r} / 流程「{flow.key}」中没有操作「{transition_key}」",
            {"reason": "unknown_transition", "transition": transition_key, "state": current_state})
    name, here = t.label, flow.label_of(current_state)
    if not flow.leaves_from(t, current_state):
        raise TransitionNotAllowed(
            f"'{name}' is not possible in state '{here}' / 当前状态「{here}」不能执行「{name}」",
            {"reason": "wrong_state", "transition": t.key, "state": current_state,
             "from": ANY_STATE if t.sources is None else list(t.sources)})
    missing = [f for f in t.require if _blank(values.get(f))]
    holds, error = _guard_holds(flow, t, values, ctx)
    role_ok = t.role_allows(user_roles, is_admin)
    reasons = ([] if not missing else ["missing_required"]) + ([] if holds else ["guard_false"]) \
        + ([] if role_ok else ["role"])
    base = {"transition": t.key, "state": current_state, "reasons": reasons}
    if missing:
        fields = ", ".join(missing)
        raise TransitionNotAllowed(
            f"'{name}' needs a value in: {fields} / 执行「{name}」前必须填写：{fields}",
            {"reason": "missing_required", "fields": missing, **base})
    if not holds:
        raise TransitionNotAllowed(
            f"The condition of '{name}' is not met: {t.condition} / 不满足「{name}」的条件：{t.condition}",
            {"reason": "guard_false", "condition": t.condition, **({"error": error} if error else {}), **base})
    if not role_ok:
        roles = ", ".join(sorted(t.roles))
        raise PermissionDenied(
            f"'{name}' may only be done by: {roles} / 只有以下角色可以执行「{name}」：{roles}",
            {"reason": "role", "roles": sorted(t.roles), **base})
    return t


def available_transitions(flow: FlowDef, state: str | None, roles: Iterable[str], is_admin: bool) -> list[Transition]:
    """Transitions leaving ``state`` that the user's roles allow (guards are not evaluated)."""
    roles = set(roles)
    return [t for t in flow.transitions.values() if flow.leaves_from(t, state) and t.role_allows(roles, is_admin)]


def plan_transition(flow: FlowDef, transition: Transition, from_state: str | None) -> dict:
    """What running ``transition`` implies, in order: exit actions, its actions, entry actions,
    and the SLA events per SLA key (``from_state`` None: the create that enters ``initial``)."""
    source = flow.states.get(from_state) if from_state is not None else None
    target = flow.states[transition.to]
    return {"from": from_state, "to": target.key,
            "exit_actions": list(source.on_exit) if source else [],
            "actions": list(transition.actions), "enter_actions": list(target.on_enter),
            "sla_events": {p.key: policy_events_for_transition(p, from_state, target.key) for p in flow.slas}}


_DECISIONS = {"approve": "approve", "approved": "approve", True: "approve",
              "reject": "reject", "rejected": "reject", False: "reject"}


def approval_outcome(mode: str, approvers: Iterable[Any],
                     decisions: Mapping[Any, Any] | Iterable[tuple[Any, Any]]) -> str:
    """``pending``, ``approved`` or ``rejected`` for the decisions so far, in the order they were made.

    ``any`` (或签): the first decision of an approver settles it. ``all`` (会签): one rejection
    rejects, every approver approving approves. Decisions of people who are not approvers are
    ignored; with no approvers at all nothing can be settled (pending).
    """
    if mode not in APPROVAL_MODES:
        raise ValueError(f"approval mode must be one of {APPROVAL_MODES}, got {mode!r}")
    eligible = set(approvers)
    pairs = decisions.items() if isinstance(decisions, Mapping) else decisions
    approved: set[Any] = set()
    for who, raw in pairs:
        decision = _DECISIONS.get(raw.lower() if isinstance(raw, str) else raw)
        if decision is None:
            raise ValueError(f"unknown approval decision {raw!r}")
        if who not in eligible:
            continue
        if decision == "reject":
            return "rejected"
        if mode == "any":
            return "approved"
        approved.add(who)
    return "approved" if eligible and approved == eligible else "pending"
