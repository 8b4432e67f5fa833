"""The rule engine: validate, compute, score, assign and automation rules of CONTRACT §3.

Pure: rules are plain dicts from the app metadata; evaluation goes through an ``Evaluator`` the
caller provides (it knows the record, lookups and the clock), and every step answers a trace
entry that says which rule ran, each condition's inputs and result, the score breakdown and the
route chosen — so "why didn't this fire?" is answerable from the timeline. Resolving people
(teams, round-robin counters, loads) and writing anything is the runtime's job.

Documented order inside the record pipeline: compute → validate → score → assign → automation.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from . import expressions as ex

KINDS = ("validate", "compute", "score", "assign", "automation")
ORDER = {kind: i for i, kind in enumerate(KINDS)}
EVENTS = ("create", "update", "delete", "schedule")
STRATEGIES = ("fixed", "round_robin", "least_loaded")
TARGET_RE = re.compile(r"^(user|team|role|field):[A-Za-z0-9_.@\-\u00c0-\uffff]{1,80}$|^owner$")
ACTION_KINDS = ("set", "assign", "add_tag", "remove_tag", "create", "notify", "email", "webhook", "transition",
                "survey")
FIELD_ACTIONS = ("set", "assign", "add_tag", "remove_tag")


class Evaluator(Protocol):
    def value(self, text: str, expect: str | None = None) -> Any: ...

    def inputs(self, text: str) -> dict[str, Any]: ...


def events_of(rule: dict) -> tuple[str, ...]:
    if "on" in rule:
        on = rule["on"]
        return tuple(on) if isinstance(on, list) else (on,)
    return ("create",) if rule.get("kind") == "assign" else ("create", "update")


def rules_for(rules: list[dict], entity_key: str, op: str) -> list[dict]:
    """The rules of an entity that run on ``op``, in the documented order (stable within a kind)."""
    chosen = [r for r in rules if r.get("entity") == entity_key and op in events_of(r)]
    return sorted(chosen, key=lambda r: ORDER.get(r.get("kind"), 99))


# ---------------------------------------------------------------- evaluation
def _cond(ev: Evaluator, text: str | None) -> tuple[bool, dict]:
    if not text:
        return True, {}
    return ev.value(text, ex.BOOL) is True, ev.inputs(text)


def run_compute(rule: dict, ev: Evaluator) -> tuple[str, Any, dict]:
    ok, inputs = _cond(ev, rule.get("condition"))
    if not ok:
        return rule["target"], _SKIP, {"rule": rule["key"], "kind": "compute", "fired": False, "inputs": inputs}
    value = ev.value(rule["expression"])
    return rule["target"], value, {"rule": rule["key"], "kind": "compute", "fired": True, "target": rule["target"],
                                   "value": _show(value), "inputs": ev.inputs(rule["expression"])}


_SKIP = object()


def skipped(value: Any) -> bool:
    return value is _SKIP


def run_validate(rule: dict, ev: Evaluator) -> tuple[str | None, str | None, dict]:
    """(field, message) when the rule fails; its ``condition`` must hold for a valid record."""
    when_ok, when_inputs = _cond(ev, rule.get("when"))
    if not when_ok:
        return None, None, {"rule": rule["key"], "kind": "validate", "fired": False, "inputs": when_inputs}
    holds = ev.value(rule["condition"], ex.BOOL) is True
    trace = {"rule": rule["key"], "kind": "validate", "fired": True, "passed": holds,
             "inputs": ev.inputs(rule["condition"])}
    if holds:
        return None, None, trace
    field = rule.get("field") or "_record"
    message = rule.get("message") or f"rule {rule['key']} failed / 规则 {rule['key']} 未通过"
    return field, message, trace


def run_score(rule: dict, ev: Evaluator) -> tuple[dict[str, Any], dict]:
    total = 0.0
    breakdown = []
    for i, comp in enumerate(rule.get("components") or []):
        item: dict[str, Any] = {"component": i}
        if "condition" in comp:
            hit = ev.value(comp["condition"], ex.BOOL) is True
            pts = float(comp.get("points", 0)) if hit else 0.0
            item.update(condition=comp["condition"], result=hit, inputs=ev.inputs(comp["condition"]))
            if hit and "expression" in comp:
                pts = _num(ev.value(comp["expression"]))
        else:
            pts = _num(ev.value(comp["expression"]))
            item.update(expression=comp["expression"], inputs=ev.inputs(comp["expression"]))
        if comp.get("label"):
            item["label"] = comp["label"]
        item["points"] = pts
        breakdown.append(item)
        total += pts
    score = int(total) if float(total).is_integer() else round(total, 4)
    out = {rule["target"]: score}
    grade = None
    grades = rule.get("grades")
    if grades:
        for band in sorted(grades.get("bands") or [], key=lambda b: -float(b.get("min", 0))):
            if total >= float(band.get("min", 0)):
                grade = band["value"]
                break
        out[grades["field"]] = grade
    return out, {"rule": rule["key"], "kind": "score", "fired": True, "score": score, "grade": grade,
                 "breakdown": breakdown}


def _num(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def pick_route(rule: dict, ev: Evaluator) -> tuple[dict | None, dict]:
    """The first route whose condition holds (else the fallback), with every condition's result."""
    checked = []
    for i, route in enumerate(rule.get("routes") or []):
        hit, inputs = _cond(ev, route.get("condition"))
        checked.append({"route": i, "condition": route.get("condition"), "result": hit, "inputs": inputs,
                        "to": route.get("to")})
        if hit:
            return route, {"rule": rule["key"], "kind": "assign", "routes": checked, "matched": i}
    fallback = rule.get("fallback")
    return fallback, {"rule": rule["key"], "kind": "assign", "routes": checked,
                      "matched": "fallback" if fallback else None}


def automation_fires(rule: dict, ev: Evaluator) -> tuple[bool, dict]:
    hit, inputs = _cond(ev, rule.get("condition"))
    return hit, {"rule": rule["key"], "kind": "automation", "fired": hit, "condition": rule.get("condition"),
                 "inputs": inputs}


def split_actions(actions: list[dict]) -> tuple[list[dict], list[dict]]:
    """(field actions applied before the write, side effects run after it)."""
    field, effects = [], []
    for action in actions or []:
        (field if action_kind(action) in FIELD_ACTIONS else effects).append(action)
    return field, effects


def action_kind(action: dict) -> str | None:
    kinds = [k for k in action if k in ACTION_KINDS]
    return kinds[0] if len(kinds) == 1 else None


def _show(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


# ---------------------------------------------------------------- save-time validation
def validate_rules(rules: list[dict], entities: Mapping[str, Any], env_for: Callable[[str], dict]) -> list[dict]:
    """Every problem of the app's rules, located as ``rules[i]...``; ``entities`` maps key -> Entity."""
    errors: list[dict] = []
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        loc = f"rules[{i}]"
        if not isinstance(rule, dict):
            errors.append({"location": loc, "message": "a rule must be an object / 规则必须是对象"})
            continue
        key, kind = rule.get("key"), rule.get("kind")
        if key in seen:
            errors.append({"location": f"{loc}.key", "message": f"duplicate rule key {key!r} / 规则键重复"})
        seen.add(key)
        if kind not in KINDS:
            errors.append({"location": f"{loc}.kind", "message": f"unknown rule kind {kind!r}; kinds: {', '.join(KINDS)} / 未知规则类型"})
            continue
        entity = entities.get(rule.get("entity"))
        if entity is None:
            errors.append({"location": f"{loc}.entity", "message": f"unknown entity {rule.get('entity')!r} / 实体不存在"})
            continue
        env = env_for(entity.key)
        on = rule.get("on", [])
        on = on if isinstance(on, list) else [on]
        for j, event in enumerate(on):
            if event not in EVENTS:
                errors.append({"location": f"{loc}.on[{j}]", "message": f"unknown event {event!r}; events: {', '.join(EVENTS)} / 未知事件"})
        allow_prev = "update" in events_of(rule) or kind == "automation"
        ctx = _Checker(errors, loc, env, allow_prev)
        _CHECKS[kind](rule, entity, ctx)
    errors.extend(rule_cycles(rules))
    return errors


class _Checker:
    def __init__(self, errors, loc, env, allow_prev):
        self.errors, self.loc, self.env, self.allow_prev = errors, loc, env, allow_prev

    def expr(self, where: str, text: Any, expect: str | None = None) -> ex.Compiled | None:
        if not isinstance(text, str) or not text.strip():
            self.errors.append({"location": f"{self.loc}.{where}", "message": "an expression is required / 需要表达式"})
            return None
        try:
            return ex.compile_expression(text, self.env, expect=expect, allow_prev=self.allow_prev)
        except ex.ExpressionError as exc:
            item = {"location": f"{self.loc}.{where}", "message": exc.message}
            if exc.position is not None:
                item["position"] = exc.position
            self.errors.append(item)
            return None

    def field(self, where: str, key: Any, entity, *, types: tuple[str, ...] | None = None) -> None:
        f = entity.field(key) if isinstance(key, str) else None
        if key == "owner" and types and "user" in types:
            return
        if f is None:
            self.errors.append({"location": f"{self.loc}.{where}", "message": f"unknown field {key!r} of {entity.key} / 字段不存在"})
        elif types and f.type not in types:
            self.errors.append({"location": f"{self.loc}.{where}", "message": f"{key} must be a {' or '.join(types)} field / 字段类型不符"})

    def error(self, where: str, message: str) -> None:
        self.errors.append({"location": f"{self.loc}.{where}", "message": message})


def _check_validate(rule, entity, c: _Checker) -> None:
    c.expr("condition", rule.get("condition"), ex.BOOL)
    if rule.get("when") is not None:
        c.expr("when", rule.get("when"), ex.BOOL)
    if rule.get("field") is not None:
        c.field("field", rule["field"], entity)


def _check_compute(rule, entity, c: _Checker) -> None:
    c.field("target", rule.get("target"), entity)
    c.expr("expression", rule.get("expression"))
    if rule.get("condition") is not None:
        c.expr("condition", rule["condition"], ex.BOOL)


def _check_score(rule, entity, c: _Checker) -> None:
    c.field("target", rule.get("target"), entity, types=("number", "decimal", "rating", "percent"))
    comps = rule.get("components")
    if not isinstance(comps, list) or not comps:
        c.error("components", "a score needs components / 评分规则需要评分项")
        comps = []
    for j, comp in enumerate(comps):
        if not isinstance(comp, dict) or not ("condition" in comp or "expression" in comp):
            c.error(f"components[{j}]", "a component has a condition with points, or an expression / 评分项无效")
            continue
        if "condition" in comp:
            c.expr(f"components[{j}].condition", comp["condition"], ex.BOOL)
            if not isinstance(comp.get("points", 0), (int, float)) or isinstance(comp.get("points"), bool):
                c.error(f"components[{j}].points", "points must be a number / 分值必须是数字")
        if "expression" in comp:
            c.expr(f"components[{j}].expression", comp["expression"], ex.NUMBER)
    grades = rule.get("grades")
    if grades is not None:
        if not isinstance(grades, dict) or not isinstance(grades.get("bands"), list):
            c.error("grades", "grades need a field and bands / 等级需要字段和区间")
            return
        c.field("grades.field", grades.get("field"), entity, types=("select", "text"))
        f = entity.field(grades.get("field") or "")
        for j, band in enumerate(grades["bands"]):
            if not isinstance(band, dict) or "value" not in band or not isinstance(band.get("min", 0), (int, float)):
                c.error(f"grades.bands[{j}]", "a band is {min: number, value: option} / 区间格式无效")
            elif f is not None and f.type == "select" and band["value"] not in f.option_values:
                c.error(f"grades.bands[{j}].value", f"{band['value']!r} is not an option of {f.key} / 不是该字段的选项")


def _check_target(c: _Checker, where: str, spec: Any, entity) -> None:
    if not isinstance(spec, dict):
        c.error(where, "a route is {to, strategy?, condition?} / 路由格式无效")
        return
    to = spec.get("to")
    if not isinstance(to, str) or not TARGET_RE.match(to):
        c.error(f"{where}.to", "to is user:NAME, team:KEY, role:ROLE or field:FIELD / 分配对象格式无效")
    elif to.startswith("field:"):
        c.field(f"{where}.to", to[6:], entity, types=("user",))
    if spec.get("strategy", "fixed") not in STRATEGIES:
        c.error(f"{where}.strategy", f"strategy is one of {', '.join(STRATEGIES)} / 分配策略无效")


def _check_assign(rule, entity, c: _Checker) -> None:
    c.field("target", rule.get("target", "owner"), entity, types=("user",))
    routes = rule.get("routes") or []
    if not isinstance(routes, list) or (not routes and not rule.get("fallback")):
        c.error("routes", "an assign rule needs routes or a fallback / 分配规则需要路由")
        routes = []
    for j, route in enumerate(routes):
        _check_target(c, f"routes[{j}]", route, entity)
        if isinstance(route, dict) and route.get("condition") is not None:
            c.expr(f"routes[{j}].condition", route["condition"], ex.BOOL)
    if rule.get("fallback") is not None:
        _check_target(c, "fallback", rule["fallback"], entity)


def _check_automation(rule, entity, c: _Checker) -> None:
    if "on" not in rule:
        c.error("on", "an automation needs on: [create|update|delete|schedule] / 自动化需要触发事件")
    if rule.get("condition") is not None:
        c.expr("condition", rule["condition"], ex.BOOL)
    on = rule.get("on") or []
    if "schedule" in (on if isinstance(on, list) else [on]):
        sched = rule.get("schedule")
        if not isinstance(sched, dict) or not ("field" in sched or "cron" in sched):
            c.error("schedule", "schedule is {field, offset} or {cron} / 计划格式无效")
        elif "field" in sched:
            c.field("schedule.field", sched["field"], entity, types=("date", "datetime"))
    check_actions(c, "actions", rule.get("actions"), entity)


def check_actions(c: _Checker, where: str, actions: Any, entity) -> None:
    if not isinstance(actions, list) or not actions:
        c.error(where, "actions must be a non-empty list / 动作不能为空")
        return
    for j, action in enumerate(actions):
        loc = f"{where}[{j}]"
        kind = action_kind(action) if isinstance(action, dict) else None
        if kind is None:
            c.error(loc, f"an action has exactly one of {', '.join(ACTION_KINDS)} / 动作类型无效")
            continue
        body = action[kind]
        if kind == "set":
            if not isinstance(body, dict) or not body:
                c.error(f"{loc}.set", "set is {field: expression} / set 格式无效")
                continue
            for key, text in body.items():
                c.field(f"{loc}.set.{key}", key, entity)
                c.expr(f"{loc}.set.{key}", text)
        elif kind == "assign":
            _check_target(c, f"{loc}.assign", body, entity)
        elif kind in ("add_tag", "remove_tag"):
            if not isinstance(body, str) or not body.strip() or len(body) > 60:
                c.error(f"{loc}.{kind}", "a tag is 1–60 characters / 标签长度 1–60")
        elif kind == "notify":
            if not isinstance(body, dict) or not isinstance(body.get("to"), list) or not isinstance(body.get("message"), str):
                c.error(f"{loc}.notify", "notify is {to: [...], message} / notify 格式无效")
        elif kind == "webhook":
            url = body.get("url") if isinstance(body, dict) else None
            if not isinstance(url, str) or not re.match(r"^https?://", url):
                c.error(f"{loc}.webhook.url", "a webhook needs an http(s) url / 需要 http(s) 地址")
        elif kind == "create":
            if not isinstance(body, dict) or not isinstance(body.get("entity"), str):
                c.error(f"{loc}.create", "create is {entity, values} / create 格式无效")
        elif kind == "transition":
            if not isinstance(body, str) and not (isinstance(body, dict) and isinstance(body.get("transition"), str)):
                c.error(f"{loc}.transition", "transition names a transition key / 需要流转键")


_CHECKS = {"validate": _check_validate, "compute": _check_compute, "score": _check_score,
           "assign": _check_assign, "automation": _check_automation}


# ---------------------------------------------------------------- rule graph
def writes_reads(rule: dict) -> tuple[set[str], set[str]]:
    """Fields a rule writes and the fields its expressions read (first path segment)."""
    kind = rule.get("kind")
    writes: set[str] = set()
    texts: list[str] = []
    if kind == "compute":
        writes.add(rule.get("target"))
        texts += [rule.get("expression"), rule.get("condition")]
    elif kind == "score":
        writes.add(rule.get("target"))
        if isinstance(rule.get("grades"), dict):
            writes.add(rule["grades"].get("field"))
        for comp in rule.get("components") or []:
            if isinstance(comp, dict):
                texts += [comp.get("condition"), comp.get("expression")]
    elif kind == "assign":
        writes.add(rule.get("target", "owner"))
        texts += [r.get("condition") for r in rule.get("routes") or [] if isinstance(r, dict)]
    elif kind == "automation":
        texts.append(rule.get("condition"))
        for action in rule.get("actions") or []:
            if isinstance(action, dict) and isinstance(action.get("set"), dict):
                writes |= set(action["set"])
                texts += list(action["set"].values())
    reads = set()
    for text in texts:
        if isinstance(text, str):
            reads |= set(re.findall(r"(?<![\w.'\"])([a-z_][a-z0-9_]*)\b", text))
    return {w for w in writes if w}, reads


def rule_cycles(rules: list[dict]) -> list[dict]:
    """Refuse "rule A writes X, which triggers rule B, which writes Y read by A" loops."""
    by_entity: dict[str, list[tuple[int, dict]]] = {}
    for i, r in enumerate(rules):
        if isinstance(r, dict) and r.get("kind") in ("compute", "score", "automation"):
            by_entity.setdefault(r.get("entity"), []).append((i, r))
    errors = []
    for items in by_entity.values():
        info = {i: writes_reads(r) for i, r in items}
        edges = {i: [j for j, _ in items if j != i and info[i][0] & info[j][1]] for i, _ in items}
        state: dict[int, int] = {}
        for i, _ in items:
            cycle = _find_cycle(i, [], edges, state)
            if cycle:
                names = " → ".join(str(rules[n].get("key")) for n in cycle)
                errors.append({"location": f"rules[{cycle[0]}]", "message": f"rules trigger each other in a loop: {names} / 规则循环触发"})
                break
    return errors


def _find_cycle(node: int, path: list[int], edges: dict[int, list[int]], state: dict[int, int]) -> list[int] | None:
    """Depth-first search: the first loop reachable from ``node`` (1 = on the path, 2 = done)."""
    if state.get(node) == 2:
        return None
    if state.get(node) == 1:
        return path[path.index(node):] + [node]
    state[node] = 1
    for nxt in edges[node]:
        found = _find_cycle(nxt, path + [node], edges, state)
        if found:
            return found
    state[node] = 2
    return None
