"""Report specs, read once: the plan every other module of the report engine works from.

Owns the vocabulary (kinds, buckets, aggregations, charts, limits) and turns a report dict into a
checked plan (``TablePlan``, ``FunnelPlan``, ``KpiPlan``, ``RfmPlan``) while collecting every
problem with its location. Save-time validation (``validation.py``) and the run-time compilers read
the same plan, so what validates is exactly what runs. No SQL and no expression compiling here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from engines.model import App

from .fields import PathError, ResolvedPath, is_numeric, is_temporal, resolve_path, value_kind

KINDS = ("table", "funnel", "kpi", "rfm")
BUCKETS = ("day", "week", "month", "quarter", "year")
AGGS = ("count", "count_distinct", "sum", "avg", "min", "max")
KPI_MEASURES = AGGS + ("nps", "csat", "ratio")
CHARTS = ("bar", "stacked_bar", "line", "pie", "donut", "funnel", "number", "table")
MAX_LIMIT = 10_000
MAX_PIVOT_COLUMNS = 200
MAX_PERIOD_DAYS = 3660
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class Problems:
    """Collects ``{"location", "message"[, "position"]}`` dicts, in the order found."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, location: str, message: str, position: int | None = None) -> None:
        item: dict[str, Any] = {"location": location, "message": message}
        if position is not None:
            item["position"] = position
        self.items.append(item)

    def path(self, app: App, entity: str, raw: Any, location: str) -> ResolvedPath | None:
        try:
            return resolve_path(app, entity, raw)
        except PathError as exc:
            self.add(location, str(exc))
            return None


@dataclass(frozen=True)
class GroupItem:
    key: str
    path: ResolvedPath
    bucket: str | None
    label: str

    @property
    def type(self) -> str:
        return "date" if self.bucket else self.path.field.type


@dataclass(frozen=True)
class Measure:
    key: str
    agg: str
    path: ResolvedPath | None
    label: str

    @property
    def integral(self) -> bool:
        return self.agg in ("count", "count_distinct") or (
            self.path is not None and self.agg != "avg" and value_kind(self.path.field) in ("integer", "ref"))


@dataclass(frozen=True)
class Ratio:
    key: str
    numerator: str
    denominator: str
    label: str


@dataclass
class TablePlan:
    groups: list[GroupItem] = field(default_factory=list)
    measures: list[Measure] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    pivot: list[GroupItem] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)   # (key, descending)
    limit: int | None = None


def _as_list(spec: dict, name: str, problems: Problems) -> list:
    value = spec.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add(name, f"`{name}` must be a list / `{name}` 必须是列表")
        return []
    return value


def group_item(app: App, entity: str, raw: Any, loc: str, problems: Problems) -> GroupItem | None:
    if isinstance(raw, str):
        raw = {"field": raw}
    if not isinstance(raw, dict):
        problems.add(loc, "must be a field key or {field, bucket} / 必须是字段或 {field, bucket}")
        return None
    path = problems.path(app, entity, raw.get("field"), f"{loc}.field")
    if path is None:
        return None
    bucket = raw.get("bucket")
    kind = value_kind(path.field)
    if bucket is None and kind == "datetime":
        bucket = "day"   # a raw timestamp is never a useful group: default to its local day
    if bucket is not None:
        if bucket not in BUCKETS:
            problems.add(f"{loc}.bucket", f"unknown bucket `{bucket}`, use one of {', '.join(BUCKETS)} / "
                                          f"未知的时间粒度 `{bucket}`")
            return None
        if kind not in ("date", "datetime"):
            problems.add(f"{loc}.bucket", f"`{path.path}` is not a date, so it cannot be bucketed by {bucket} / "
                                          f"`{path.path}` 不是日期字段，不能按{bucket}分组")
            return None
    if kind == "list":
        problems.add(f"{loc}.field", f"cannot group by the list field `{path.path}` / 不能按列表字段 `{path.path}` 分组")
        return None
    key = raw.get("key") or (f"{path.path}_{bucket}" if raw.get("bucket") else path.path)
    label = raw.get("label") or (f"{path.label} ({bucket})" if raw.get("bucket") else path.label)
    return GroupItem(str(key), path, bucket, str(label))


def _measure(app: App, entity: str, raw: Any, loc: str, problems: Problems) -> Measure | Ratio | None:
    if isinstance(raw, str):
        raw = {"agg": raw}
    if not isinstance(raw, dict):
        problems.add(loc, "must be {agg, field?} or {ratio: [a, b]} / 必须是 {agg, field} 或 {ratio: [a, b]}")
        return None
    if "ratio" in raw:
        pair = raw["ratio"]
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(k, str) for k in pair)):
            problems.add(f"{loc}.ratio", "ratio must name two measure keys [a, b] / 比率必须指定两个指标 [a, b]")
            return None
        key = raw.get("key") or f"{pair[0]}_per_{pair[1]}"
        return Ratio(str(key), pair[0], pair[1], str(raw.get("label") or f"{pair[0]} / {pair[1]}"))
    agg = raw.get("agg", "count")
    if agg not in AGGS:
        problems.add(f"{loc}.agg", f"unknown aggregation `{agg}`, use one of {', '.join(AGGS)} / 未知的汇总方式 `{agg}`")
        return None
    path = None
    if raw.get("field") is not None:
        path = problems.path(app, entity, raw["field"], f"{loc}.field")
        if path is None:
            return None
    elif agg != "count":
        problems.add(f"{loc}.field", f"`{agg}` needs a field / `{agg}` 需要指定字段")
        return None
    if path is not None:
        if agg in ("sum", "avg") and not is_numeric(path.field):
            problems.add(f"{loc}.field", f"cannot {agg} `{path.path}`: it is not a number ({path.field.type}) / "
                                         f"`{path.path}` 不是数字字段，不能{'求和' if agg == 'sum' else '求平均'}")
            return None
        if agg in ("min", "max") and not (is_numeric(path.field) or is_temporal(path.field)):
            problems.add(f"{loc}.field", f"`{agg}` needs a number or a date, `{path.path}` is {path.field.type} / "
                                         f"`{agg}` 只适用于数字或日期字段")
            return None
        if value_kind(path.field) == "list":
            problems.add(f"{loc}.field", f"cannot aggregate the list field `{path.path}` / 不能汇总列表字段")
            return None
    suffix = f"_{path.path.replace('.', '_')}" if path is not None else ""
    key = raw.get("key") or f"{agg}{suffix}"
    label = raw.get("label") or (f"{agg}({path.label})" if path is not None else agg)
    return Measure(str(key), agg, path, str(label))


def plan_table(app: App, spec: dict, problems: Problems) -> TablePlan:
    entity = spec["entity"]
    plan = TablePlan()
    for i, raw in enumerate(_as_list(spec, "group_by", problems)):
        if (g := group_item(app, entity, raw, f"group_by[{i}]", problems)) is not None:
            plan.groups.append(g)
    for i, raw in enumerate(_as_list(spec, "columns", problems)):
        if (g := group_item(app, entity, raw, f"columns[{i}]", problems)) is not None:
            plan.pivot.append(g)
    raw_measures = _as_list(spec, "measures", problems) or [{"agg": "count"}]
    for i, raw in enumerate(raw_measures):
        m = _measure(app, entity, raw, f"measures[{i}]", problems)
        if isinstance(m, Measure):
            plan.measures.append(m)
        elif isinstance(m, Ratio):
            plan.ratios.append(m)
    measure_keys = {m.key for m in plan.measures}
    for r in plan.ratios:
        for ref in (r.numerator, r.denominator):
            if ref not in measure_keys:
                problems.add("measures", f"ratio `{r.key}` names unknown measure `{ref}` / 比率 `{r.key}` 引用了未知指标 `{ref}`")
    seen: set[str] = set()
    for item in [*plan.groups, *plan.measures, *plan.ratios]:
        if item.key in seen:
            problems.add("measures", f"two columns share the key `{item.key}` / 列名 `{item.key}` 重复")
        seen.add(item.key)
    for g in plan.pivot:
        if g.key in {x.key for x in plan.groups}:
            problems.add("columns", f"`{g.key}` is both a row and a column group / `{g.key}` 不能同时作为行和列分组")
    for i, raw in enumerate(_as_list(spec, "sort", problems)):
        key = raw[1:] if isinstance(raw, str) and raw[:1] in "+-" else raw
        if not isinstance(key, str) or key not in seen:
            problems.add(f"sort[{i}]", f"cannot sort by `{raw}`: not a column of this report / 无法按 `{raw}` 排序"
                         + (f" ({', '.join(sorted(seen))})" if seen else ""))
            continue
        plan.sort.append((key, raw.startswith("-")))
    plan.limit = check_limit(spec, problems)
    return plan


def check_limit(spec: dict, problems: Problems) -> int | None:
    limit = spec.get("limit")
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        problems.add("limit", f"limit must be a whole number from 1 to {MAX_LIMIT} / 行数限制必须是 1 到 {MAX_LIMIT} 的整数")
        return None
    return limit
