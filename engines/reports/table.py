"""The grouped-table report kind: one aggregate query, with pivot columns, ratios and totals.

Owns compiling a ``TablePlan`` to a single ``SELECT … GROUP BY`` (group labels ``_g*``, measures
``_m*``, ratios ``_r*``, pivot cells by conditional aggregation), the totals over the whole filtered
set in the same query (window aggregates over the groups, evaluated before LIMIT; COUNT DISTINCT,
which cannot be combined that way, gets its own query), sorting, limits, and drill-down filters.
Python only reshapes the grouped rows it gets back.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from engines.errors import JimuError

from .buckets import next_bucket_start
from .compiler import QueryContext, measure_value, plain, quotient
from .fields import option_labels
from .spec import MAX_LIMIT, MAX_PIVOT_COLUMNS, GroupItem, Measure, Ratio, TablePlan


class _Cell:
    """One output measure column: a measure (or ratio) restricted to a pivot value, or not."""

    def __init__(self, key: str, label: str, item: Measure | Ratio, cond: ColumnElement | None,
                 pivot: dict | None, parts: dict[str, _Cell] | None = None):
        self.key, self.label, self.item, self.cond, self.pivot = key, label, item, cond, pivot
        self.parts = parts or {}


def _column(key: str, label: str, type_: str, role: str, **extra: Any) -> dict:
    return {"key": key, "label": label, "type": type_, "role": role,
            **{k: v for k, v in extra.items() if v is not None}}


def _pivot_values(conn: Connection, qc: QueryContext, plan: TablePlan, where: list) -> list[tuple]:
    exprs = [qc.group_expr(g).label(f"_p{i}") for i, g in enumerate(plan.pivot)]
    labels = [sa.literal_column(f"_p{i}") for i in range(len(exprs))]
    query = (qc.select(*exprs, where=where).group_by(*labels)
             .order_by(*(lbl.asc().nulls_last() for lbl in labels)).limit(MAX_PIVOT_COLUMNS + 1))
    values = [tuple(r) for r in conn.execute(query)]
    if len(values) * max(len(plan.measures) + len(plan.ratios), 1) > MAX_PIVOT_COLUMNS:
        raise JimuError(f"the pivot would have more than {MAX_PIVOT_COLUMNS} columns; add a filter or a "
                        f"coarser bucket / 透视列超过 {MAX_PIVOT_COLUMNS} 个，请增加筛选条件或使用更粗的时间粒度",
                        code="report_too_wide", status=422)
    return values


def _cells(qc: QueryContext, plan: TablePlan, pivot_values: list[tuple]) -> list[_Cell]:
    single = len(plan.measures) + len(plan.ratios) == 1

    def block(cond, pivot, key_suffix: str, text: str | None) -> list[_Cell]:
        cells: dict[str, _Cell] = {}
        for item in [*plan.measures, *plan.ratios]:
            label = item.label if text is None else (text if single else f"{text} · {item.label}")
            parts = ({"a": cells[item.numerator], "b": cells[item.denominator]}
                     if isinstance(item, Ratio) else None)
            cells[item.key] = _Cell(item.key + key_suffix, label, item, cond, pivot, parts)
        return list(cells.values())

    out: list[_Cell] = []
    used: set[str] = set()
    pivot_exprs = [qc.group_expr(g) for g in plan.pivot]
    for j, values in enumerate(pivot_values):
        cond = sa.and_(*(e.is_(None) if v is None else e == v for e, v in zip(pivot_exprs, values, strict=True)))
        shown = [plain(v, qc.tz) for v in values]
        text = " · ".join(_value_label(g, v) for g, v in zip(plan.pivot, shown, strict=True))
        suffix = "__" + "__".join("null" if v is None else str(v) for v in shown)
        if suffix in used:      # e.g. a text value "null" next to a blank one
            suffix += f"~{j}"
        used.add(suffix)
        out += block(cond, {g.key: v for g, v in zip(plan.pivot, shown, strict=True)}, suffix, text)
    out += block(None, None, "", None)
    return out


def _value_label(g: GroupItem, value: Any) -> str:
    if value is None:
        return "(blank / 空)"
    return (option_labels(g.path.field) or {}).get(value, str(value))


def run_table(conn: Connection, qc: QueryContext, plan: TablePlan, where: list[ColumnElement]) -> dict:
    tz = qc.tz
    pivot_values = _pivot_values(conn, qc, plan, where) if plan.pivot else []
    cells = _cells(qc, plan, pivot_values)
    group_cols = [qc.group_expr(g).label(f"_g{i}") for i, g in enumerate(plan.groups)]
    select_cols: list = list(group_cols)
    labels: dict[str, str] = {g.key: f"_g{i}" for i, g in enumerate(plan.groups)}
    aggs: dict[str, ColumnElement] = {}
    windowed = bool(plan.groups)
    for i, cell in enumerate(cells):
        if isinstance(cell.item, Measure):
            agg = qc.aggregate(cell.item, cell.cond)
            aggs[cell.key] = agg
            select_cols.append(agg.label(f"_m{i}"))
            if windowed and cell.item.agg != "count_distinct":
                select_cols.append(_window_total(qc, cell.item, cell.cond).label(f"_t{i}"))
        else:
            a, b = aggs[cell.parts["a"].key], aggs[cell.parts["b"].key]
            select_cols.append(_divide(a, b).label(f"_m{i}"))
        labels[cell.key] = f"_m{i}"
    query = qc.select(*select_cols, where=where)
    if plan.groups:
        query = query.group_by(*(sa.literal_column(lbl) for lbl in labels.values() if lbl.startswith("_g")))
    order = [(labels[k], desc) for k, desc in plan.sort]
    order += [(f"_g{i}", False) for i in range(len(plan.groups)) if (f"_g{i}", False) not in order]
    query = query.order_by(*(_order(lbl, desc) for lbl, desc in order))
    limit = plan.limit or MAX_LIMIT
    rows = conn.execute(query.limit(limit + 1)).mappings().all()
    truncated = len(rows) > limit
    rows = rows[:limit]

    columns = [_column(g.key, g.label, g.type, "dimension", options=option_labels(g.path.field) if not g.bucket else None)
               for g in plan.groups]
    for cell in cells:
        columns.append(_column(cell.key, cell.label, _measure_type(cell.item), "measure", pivot=cell.pivot))
    out_rows = []
    for row in rows:
        item = {g.key: plain(row[f"_g{i}"], tz) for i, g in enumerate(plan.groups)}
        for i, cell in enumerate(cells):
            item[cell.key] = _value(cell, row[f"_m{i}"], tz)
        out_rows.append(item)
    totals = _totals(conn, qc, cells, rows, where, windowed)
    return {"columns": columns, "rows": out_rows, "totals": totals, "truncated": truncated and not plan.limit}


def _order(label: str, desc: bool):
    col = sa.literal_column(label)
    return (col.desc() if desc else col.asc()).nulls_last()


def _measure_type(item: Measure | Ratio) -> str:
    if isinstance(item, Ratio):
        return "ratio"
    if item.agg in ("count", "count_distinct"):
        return "integer"
    if item.agg in ("min", "max") and item.path is not None and item.path.field.type in ("date", "datetime"):
        return item.path.field.type
    return "number"


def _value(cell: _Cell, value: Any, tz) -> Any:
    if isinstance(cell.item, Ratio):
        return None if value is None else round(float(value), 4)
    return measure_value(value, cell.item.agg, cell.item.integral, tz)


def _window_total(qc: QueryContext, m: Measure, cond) -> ColumnElement:
    """The whole-set value of ``m`` from its per-group aggregates, as a window over all groups."""
    inner = qc.aggregate(m, cond)
    if m.agg in ("count", "sum"):
        return sa.func.sum(inner).over()
    if m.agg in ("min", "max"):
        return getattr(sa.func, m.agg)(inner).over()
    col = qc.column(m.path)
    arg = col if cond is None else sa.case((cond, col))
    return _divide(sa.func.sum(sa.func.sum(arg)).over(), sa.func.sum(sa.func.count(arg)).over())


def _divide(a: ColumnElement, b: ColumnElement) -> ColumnElement:
    """a / b as a float, NULL when b is 0 or NULL."""
    return sa.cast(a, sa.Float) / sa.func.nullif(sa.cast(b, sa.Float), 0, type_=sa.Float)


def _totals(conn, qc, cells: list[_Cell], rows, where, windowed: bool) -> dict:
    totals: dict[str, Any] = {}
    distinct = [(i, c) for i, c in enumerate(cells) if isinstance(c.item, Measure) and
                (c.item.agg == "count_distinct" and windowed)]
    if distinct:
        query = qc.select(*(qc.aggregate(c.item, c.cond).label(f"_m{i}") for i, c in distinct), where=where)
        extra = conn.execute(query).mappings().one()
    for i, cell in enumerate(cells):
        if isinstance(cell.item, Ratio):
            totals[cell.key] = quotient(totals[cell.parts["a"].key], totals[cell.parts["b"].key])
            continue
        if not windowed:
            raw = rows[0][f"_m{i}"] if rows else None
        elif cell.item.agg == "count_distinct":
            raw = extra[f"_m{i}"]
        else:
            raw = rows[0][f"_t{i}"] if rows else None
        totals[cell.key] = measure_value(raw, cell.item.agg, cell.item.integral, qc.tz)
    return totals


# -- drill-down -------------------------------------------------------------------------------
def literal(value: Any) -> str:
    """A value as an expression-language literal."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    escaped = (text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
               .replace("\t", "\\t"))
    return f"'{escaped}'"


def _date_literal(iso: str) -> str:
    y, m, d = (int(p) for p in iso[:10].split("-"))
    return f"DATE({y}, {m}, {d})"


def group_condition(g: GroupItem, value: Any) -> str:
    path = g.path.path
    if value is None:
        return f"ISBLANK({path})"
    if g.bucket:
        end = next_bucket_start(str(value)[:10], g.bucket).isoformat()
        return f"{path} >= {_date_literal(str(value))} and {path} < {_date_literal(end)}"
    if g.path.field.type == "date" or (g.path.field.type == "formula" and g.path.field.result_type == "date"):
        return f"{path} == {_date_literal(str(value))}"
    return f"{path} == {literal(value)}"


def drilldown_conditions(plan: TablePlan, row: dict, column: dict | None) -> list[str]:
    conds = [group_condition(g, row.get(g.key)) for g in plan.groups if g.key in row]
    pivot = (column or {}).get("pivot") or {}
    conds += [group_condition(g, pivot[g.key]) for g in plan.pivot if g.key in pivot]
    return conds


def cell_filter(spec_filter: str | None, conds: list[str]) -> str:
    parts = ([f"({spec_filter})"] if spec_filter else []) + [f"({c})" if " or " in c else c for c in conds]
    return " and ".join(parts) if parts else "True"

