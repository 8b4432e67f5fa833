"""Save-time checks of a report spec: every problem, located, in 中文 and English.

Owns ``validate_report`` and ``check_report`` (the same checks, also answering the plan the run
time uses): kind, entity, chart, limit, typos in key names, the filter expressions (with their
character position, through ``engines.expressions``) and the kind-specific plans of ``spec.py``
and ``spec_kinds.py``. It never touches a database.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any

from engines.model import App

from .expr import check_filter
from .fields import suggest
from .kinds import RFM_SORT_KEYS
from .spec import CHARTS, KINDS, Problems, check_limit, plan_table
from .spec_kinds import plan_funnel, plan_kpi, plan_rfm

COMMON_KEYS = frozenset({"key", "id", "label", "description", "help", "entity", "kind", "filter", "chart"})
KIND_KEYS = MappingProxyType({
    "table": frozenset({"group_by", "measures", "columns", "sort", "limit"}),
    "funnel": frozenset({"stage_field", "stages"}),
    "kpi": frozenset({"measure", "period"}),
    "rfm": frozenset({"customer", "date", "amount", "sort", "limit"}),
})
DEFAULT_CHARTS = MappingProxyType({"table": "bar", "funnel": "funnel", "kpi": "number", "rfm": "table"})


def validate_report(app: App, spec: Any) -> list[dict]:
    """Every problem of ``spec`` as ``{"location", "message"[, "position"]}``; [] when it is valid.

    Locations are relative to the report (``group_by[1].field``, ``filter``); a caller storing
    many reports prefixes them (``reports[3].``).
    """
    return check_report(app, spec)[0]


def check_report(app: App, spec: Any) -> tuple[list[dict], Any]:
    problems = Problems()
    if not isinstance(spec, dict):
        problems.add("", "a report must be an object / 报表定义必须是对象")
        return problems.items, None
    kind = spec.get("kind", "table")
    if kind not in KINDS:
        problems.add("kind", f"unknown report kind `{kind}`, use one of {', '.join(KINDS)} / 未知的报表类型 `{kind}`"
                     + suggest(str(kind), KINDS))
        return problems.items, None
    entity = spec.get("entity")
    if not isinstance(entity, str) or app.entity(entity) is None:
        problems.add("entity", f"unknown entity `{entity}` / 未知实体 `{entity}`"
                     + suggest(str(entity), [e.key for e in app.entities]))
        return problems.items, None
    known = COMMON_KEYS | KIND_KEYS[kind]
    for name in spec:
        if name not in known and (hint := suggest(str(name), known)):
            problems.add(str(name), f"unknown setting `{name}` / 未知设置 `{name}`" + hint)
    chart = spec.get("chart")
    if chart is not None and chart not in CHARTS:
        problems.add("chart", f"unknown chart `{chart}`, use one of {', '.join(CHARTS)} / 未知的图表类型 `{chart}`"
                     + suggest(str(chart), CHARTS))
    if spec.get("filter") is not None:
        _check_filter(app, entity, spec["filter"], "filter", problems)
    plan: Any
    if kind == "table":
        plan = plan_table(app, spec, problems)
    elif kind == "funnel":
        plan = plan_funnel(app, spec, problems)
    elif kind == "kpi":
        plan = plan_kpi(app, spec, problems)
        if plan is not None and plan.measure == "ratio":
            _check_filter(app, entity, plan.numerator, "measure.ratio.numerator", problems)
            if plan.denominator is not None:
                _check_filter(app, entity, plan.denominator, "measure.ratio.denominator", problems)
    else:
        plan = plan_rfm(app, spec, problems)
        check_limit(spec, problems)
        sort = spec.get("sort") or []
        if not isinstance(sort, list):
            problems.add("sort", "`sort` must be a list / `sort` 必须是列表")
            sort = []
        for i, raw in enumerate(sort):
            if not isinstance(raw, str) or raw.lstrip("+-") not in RFM_SORT_KEYS:
                problems.add(f"sort[{i}]", f"cannot sort by `{raw}`, use one of {', '.join(RFM_SORT_KEYS)} / "
                                           f"无法按 `{raw}` 排序")
    return problems.items, plan


def _check_filter(app: App, entity: str, text: Any, location: str, problems: Problems) -> None:
    found = check_filter(app, entity, text)
    if found is not None:
        problems.add(location, found[0], found[1])
