"""The rule engine inside the record pipeline: runs an entity's rules in the documented order,
applies their results to the record, keeps roll-up fields current, and leaves a trace of every
rule on the record's timeline.

Order (CONTRACT §3 / engines.rules): compute → validate → score → assign → automation. Automation
field actions (set, assign, tags) change the record before it is written; side effects (create,
notify, email, webhook, transition, survey) run after the write, in the same transaction.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engines import expressions as ex
from engines import rules as R
from engines.errors import JimuError
from engines.field_types import REGISTRY, FieldValueError

from .assignment import choose_assignee
from .catalog import Catalog, CompiledApp
from .records import RecordCall, RecordHooks


class RecordEvaluator:
    """Evaluates expressions against one record call (values, lookups, prev, clock)."""

    def __init__(self, svc, rc: RecordCall, *, allow_prev: bool):
        self.svc, self.rc, self.allow_prev = svc, rc, allow_prev

    def _compiled(self, text: str, expect=None):
        return self.rc.capp.compile(text, self.rc.entity.key, expect=expect, allow_prev=self.allow_prev)

    def value(self, text: str, expect: str | None = None) -> Any:
        return self.svc.evaluate(self.rc, text, expect=expect, allow_prev=self.allow_prev)

    def inputs(self, text: str) -> dict[str, Any]:
        names = self._compiled(text).names
        values = self.svc.lookup_values(self.rc.ctx, self.rc.capp, self.rc.entity, self.rc.values, names)
        out = {}
        for n in sorted(names):
            v = values.get(n)
            out[n] = v if v is None or isinstance(v, (bool, int, float, str, list)) else str(v)
        return out


def fit_value(rc: RecordCall, key: str, value: Any) -> Any:
    f = rc.entity.field(key)
    if f is None:
        if key == "owner":
            return value
        raise JimuError(f"A rule writes the unknown field {key!r} / 规则写入了不存在的字段", code="rule_failed", status=422)
    if value is None:
        return None
    if f.type in ("formula", "rollup"):
        return value
    ft = REGISTRY[f.type]
    try:
        if f.type in ("text", "textarea", "email", "phone", "url", "select") and not isinstance(value, str):
            value = str(value)
        if f.type in ("decimal", "currency", "percent", "number", "rating") and isinstance(value, bool):
            raise FieldValueError("must be a number")
        if f.type == "date" and hasattr(value, "date") and callable(value.date):
            value = value.date()
        return ft.coerce(value, f)
    except FieldValueError as exc:
        rc.errors.setdefault(key, []).append(f"a rule computed an invalid value: {exc} / 规则计算值无效")
        return None


class RulesHook(RecordHooks):
    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    # ------------------------------------------------------------ before the write
    def before_write(self, rc: RecordCall) -> None:
        rules = R.rules_for(rc.capp.app.rules, rc.entity.key, rc.op)
        if not rules:
            return
        # prev()/changed() are allowed wherever the rule may run on update; on create prev is blank
        plain = auto = RecordEvaluator(self.svc, rc, allow_prev=True)
        for rule in rules:
            try:
                self._run(rc, rule, plain, auto)
            except ex.EvalError as exc:
                rc.errors.setdefault(rule.get("field") or rule.get("target") or "_record", []).append(
                    f"rule {rule['key']}: {exc.message}")
                rc.trace.append({"rule": rule["key"], "kind": rule["kind"], "error": exc.message})

    def _run(self, rc: RecordCall, rule: dict, plain: RecordEvaluator, auto: RecordEvaluator) -> None:
        kind = rule["kind"]
        if kind == "compute":
            target, value, trace = R.run_compute(rule, plain)
            if not R.skipped(value):
                rc.values[target] = fit_value(rc, target, value)
            rc.trace.append(trace)
        elif kind == "validate":
            field, message, trace = R.run_validate(rule, plain)
            if field:
                rc.errors.setdefault(field, []).append(message)
            rc.trace.append(trace)
        elif kind == "score":
            out, trace = R.run_score(rule, plain)
            for key, value in out.items():
                rc.values[key] = fit_value(rc, key, value)
            rc.trace.append(trace)
        elif kind == "assign":
            target = rule.get("target", "owner")
            if target in rc.written and rc.values.get(target) is not None:
                rc.trace.append({"rule": rule["key"], "kind": "assign", "fired": False,
                                 "why": f"{target} was set explicitly / 已手动指定"})
                return
            route, trace = R.pick_route(rule, plain)
            if route is not None:
                uid, how = choose_assignee(rc.ctx, rc.capp, rc.entity.key, route["to"], route.get("strategy"),
                                           rc.values, target=target, simulate=rc.simulate)
                trace["assignment"] = how
                if uid is not None:
                    rc.values[target] = uid
                    rc.extra.setdefault("assigned", []).append({"rule": rule["key"], "target": target, "user": uid})
            rc.trace.append(trace)
        elif kind == "automation":
            if rc.op == "delete":
                return
            fires, trace = R.automation_fires(rule, auto)
            rc.trace.append(trace)
            if fires:
                field_actions, effects = R.split_actions(rule.get("actions") or [])
                if field_actions:
                    apply_field_actions(self.svc, rc, field_actions, source=rule["key"])
                if effects:
                    rc.extra.setdefault("side_effects", []).append((rule["key"], effects))

    # ------------------------------------------------------------ after the write
    def after_write(self, rc: RecordCall) -> None:
        for source, effects in rc.extra.pop("side_effects", []):
            apply_side_effects(self.svc, rc, effects, source=source)
        update_rollups(rc.ctx, rc.capp, rc.entity.key, rc.prev, rc.values)

    def before_delete(self, rc: RecordCall) -> None:
        rules = R.rules_for(rc.capp.app.rules, rc.entity.key, "delete")
        auto = RecordEvaluator(self.svc, rc, allow_prev=True)
        for rule in rules:
            if rule["kind"] != "automation":
                continue
            fires, trace = R.automation_fires(rule, auto)
            rc.trace.append(trace)
            if fires:
                _, effects = R.split_actions(rule.get("actions") or [])
                rc.extra.setdefault("side_effects", []).append((rule["key"], effects))

    def after_delete(self, rc: RecordCall) -> None:
        for source, effects in rc.extra.pop("side_effects", []):
            apply_side_effects(self.svc, rc, effects, source=source)
        update_rollups(rc.ctx, rc.capp, rc.entity.key, rc.prev, None)


def apply_field_actions(svc, rc: RecordCall, actions: list[dict], *, source: str) -> None:
    from . import actions as A
    A.apply_field_actions(svc, rc, actions, source=source)


def apply_side_effects(svc, rc: RecordCall, actions: list[dict], *, source: str) -> None:
    if rc.simulate:
        return
    from . import actions as A
    A.apply_side_effects(svc, rc, actions, source=source)


def update_rollups(ctx, capp: CompiledApp, child_key: str, before: dict | None, after: dict | None) -> None:
    """Recompute the roll-up fields that aggregate ``child_key`` for the parents it touched."""
    for parent in capp.app.entities:
        for f in parent.fields:
            spec = f.rollup if f.type == "rollup" else None
            if not spec or spec.get("entity") != child_key:
                continue
            via = spec["via"]
            ids = {v for v in ((before or {}).get(via), (after or {}).get(via)) if v is not None}
            if not ids:
                continue
            child = capp.tables[child_key]
            agg = spec["agg"]
            measure = sa.func.count() if agg == "count" else getattr(sa.func, agg)(child.c[spec["field"]])
            where = []
            if spec.get("filter"):
                compiled = capp.compile(spec["filter"], child_key, expect=ex.BOOL)
                from .record_query import resolver
                where.append(compiled.to_sql(resolver(capp, child_key), ex.EvalContext(now=ctx.now, tz=capp.tz),
                                             capp.dialect))
            ptable = capp.tables[parent.key]
            for pid in ids:
                value = ctx.conn.execute(sa.select(measure).where(child.c[via] == pid, *where)).scalar()
                if value is None and agg in ("count", "sum"):
                    value = 0
                ctx.conn.execute(ptable.update().where(ptable.c.id == pid).values(
                    {f.key: None if value is None else float(value)}))
