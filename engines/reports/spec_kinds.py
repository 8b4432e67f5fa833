"""Plans of the special report kinds: funnel, KPI and RFM.

Owns reading and checking the kind-specific parts of a report spec (stage field and stages, the KPI
measure and period, the RFM customer/date/amount fields) into small frozen plans, collecting
problems with their locations. The SQL for each kind lives in ``kinds.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engines.model import App

from .fields import ResolvedPath, is_numeric, is_temporal, value_kind
from .spec import AGGS, KPI_MEASURES, MAX_PERIOD_DAYS, Problems


@dataclass(frozen=True)
class FunnelPlan:
    stage: ResolvedPath
    stages: tuple[str, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Period:
    path: ResolvedPath
    days: int


@dataclass(frozen=True)
class KpiPlan:
    measure: str                    # one of KPI_MEASURES
    path: ResolvedPath | None       # the field of an aggregation, nps or csat
    numerator: str | None = None    # filter expressions of a ratio
    denominator: str | None = None
    period: Period | None = None
    label: str = ""


@dataclass(frozen=True)
class RfmPlan:
    customer: ResolvedPath
    date: ResolvedPath
    amount: ResolvedPath


def stage_values(app: App, entity: str, path: ResolvedPath) -> dict[str, str]:
    """Allowed stage values -> labels: the field's options, plus the flow's states on its state field."""
    values = {o.value: o.label for o in path.field.options}
    flow = app.flow_for(entity)
    if flow and not path.hops and flow.get("state_field") == path.field.key:
        for state in flow.get("states") or []:
            if isinstance(state, dict) and state.get("key"):
                values.setdefault(str(state["key"]), str(state.get("label") or state["key"]))
    return values


def plan_funnel(app: App, spec: dict, problems: Problems) -> FunnelPlan | None:
    entity = spec["entity"]
    path = problems.path(app, entity, spec.get("stage_field"), "stage_field")
    stages = spec.get("stages")
    if not isinstance(stages, list) or not stages or not all(isinstance(s, str) for s in stages):
        problems.add("stages", "stages must be a non-empty list of values / stages 必须是非空的阶段列表")
        return None
    if len(set(stages)) != len(stages):
        problems.add("stages", "a stage is listed twice / 阶段重复")
    if path is None:
        return None
    allowed = stage_values(app, entity, path)
    if not allowed:
        problems.add("stage_field", f"`{path.path}` has no options or flow states to use as stages / "
                                    f"`{path.path}` 没有可用作阶段的选项")
        return None
    ok = True
    for i, stage in enumerate(stages):
        if stage not in allowed:
            ok = False
            problems.add(f"stages[{i}]", f"`{stage}` is not an option of `{path.path}` ({', '.join(allowed)}) / "
                                         f"`{stage}` 不是 `{path.path}` 的选项")
    if not ok:
        return None
    return FunnelPlan(path, tuple(stages), tuple(allowed[s] for s in stages))


def plan_kpi(app: App, spec: dict, problems: Problems) -> KpiPlan | None:
    entity = spec["entity"]
    raw = spec.get("measure")
    if not isinstance(raw, dict) or len(raw) != 1:
        problems.add("measure", f"measure must be one of {{{' | '.join(KPI_MEASURES)}: ...}} / 指标格式错误")
        return None
    (name, arg), = raw.items()
    if name not in KPI_MEASURES:
        problems.add("measure", f"unknown KPI measure `{name}`, use one of {', '.join(KPI_MEASURES)} / 未知的指标 `{name}`")
        return None
    period = _period(app, entity, spec.get("period"), problems)
    label = str(spec.get("label") or spec.get("key") or name)
    if name == "ratio":
        if not isinstance(arg, dict) or not isinstance(arg.get("numerator"), str) or not (
                arg.get("denominator") is None or isinstance(arg.get("denominator"), str)):
            problems.add("measure.ratio", "ratio needs {numerator: filter, denominator: filter?} / "
                                          "比率需要 {numerator: 条件, denominator: 条件}")
            return None
        return KpiPlan("ratio", None, arg["numerator"], arg.get("denominator"), period, label)
    if name == "count" and (arg is None or arg is True):
        return KpiPlan("count", None, period=period, label=label)
    path = problems.path(app, entity, arg, f"measure.{name}")
    if path is None:
        return None
    if name in ("sum", "avg", "nps", "csat") and not is_numeric(path.field):
        problems.add(f"measure.{name}", f"`{name}` needs a number field, `{path.path}` is {path.field.type} / "
                                        f"`{path.path}` 不是数字字段")
        return None
    if name in ("min", "max") and not (is_numeric(path.field) or is_temporal(path.field)):
        problems.add(f"measure.{name}", f"`{name}` needs a number or a date / `{name}` 只适用于数字或日期字段")
        return None
    if name in AGGS and value_kind(path.field) == "list":
        problems.add(f"measure.{name}", "cannot aggregate a list field / 不能汇总列表字段")
        return None
    return KpiPlan(name, path, period=period, label=label)


def _period(app: App, entity: str, raw: Any, problems: Problems) -> Period | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add("period", "period must be {field, days} / period 必须是 {field, days}")
        return None
    path = problems.path(app, entity, raw.get("field"), "period.field")
    if path is not None and not is_temporal(path.field):
        problems.add("period.field", f"`{path.path}` is not a date / `{path.path}` 不是日期字段")
        path = None
    days = raw.get("days")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_PERIOD_DAYS:
        problems.add("period.days", f"days must be a whole number from 1 to {MAX_PERIOD_DAYS} / "
                                    f"days 必须是 1 到 {MAX_PERIOD_DAYS} 的整数")
        return None
    return Period(path, days) if path is not None else None


def plan_rfm(app: App, spec: dict, problems: Problems) -> RfmPlan | None:
    entity = spec["entity"]
    customer = problems.path(app, entity, spec.get("customer"), "customer")
    date = problems.path(app, entity, spec.get("date"), "date")
    amount = problems.path(app, entity, spec.get("amount"), "amount")
    if customer is not None and (customer.hops or customer.field.type != "lookup"):
        problems.add("customer", f"`{customer.path}` must be a lookup field of `{entity}` / "
                                 f"`{customer.path}` 必须是关联字段")
        customer = None
    if date is not None and not is_temporal(date.field):
        problems.add("date", f"`{date.path}` must be a date or datetime field / `{date.path}` 必须是日期字段")
        date = None
    if amount is not None and not is_numeric(amount.field):
        problems.add("amount", f"`{amount.path}` must be a number field / `{amount.path}` 必须是数字字段")
        amount = None
    if customer is None or date is None or amount is None:
        return None
    return RfmPlan(customer, date, amount)
