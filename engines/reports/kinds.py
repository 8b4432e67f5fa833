"""The funnel, KPI and RFM report kinds: each one aggregate query, then arithmetic on its result.

Owns the SQL of the special kinds and the shape of their answers. A funnel counts, in one row of
conditional counts, the records at each stage or a later one (records whose stage is not one of
the funnel's stages, such as ``lost``, are not counted). A KPI is one row of (conditional)
aggregates for the current and, with a ``period``, the previous period. RFM groups the orders by
customer in SQL (last order, count, sum; totals by window functions); scoring each customer
against the means over customers is done on those per-customer rows. Rates are percentages
(0–100, two decimals), NPS is in points (−100…100).
"""
from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from .compiler import QueryContext, aggregate, aware, measure_value, quotient
from .fields import value_kind
from .spec_kinds import FunnelPlan, KpiPlan, Period, RfmPlan

SEGMENTS = (  # (key, 中文, R high, F high, M high)
    ("important_value", "重要价值", True, True, True),
    ("important_develop", "重要发展", True, False, True),
    ("important_keep", "重要保持", False, True, True),
    ("important_retain", "重要挽留", False, False, True),
    ("general_value", "一般价值", True, True, False),
    ("general_develop", "一般发展", True, False, False),
    ("general_keep", "一般保持", False, True, False),
    ("general_retain", "一般挽留", False, False, False),
)
RFM_SORT_KEYS = ("customer", "recency", "frequency", "monetary", "segment")


def _col(key: str, label: str, type_: str, role: str = "measure", **extra: Any) -> dict:
    return {"key": key, "label": label, "type": type_, "role": role, **extra}


def _and(*conds: ColumnElement | None) -> ColumnElement | None:
    present = [c for c in conds if c is not None]
    return sa.and_(*present) if present else None


# -- funnel -----------------------------------------------------------------------------------
def run_funnel(conn: Connection, qc: QueryContext, plan: FunnelPlan, where: list, spec: dict) -> dict:
    stage = qc.column(plan.stage)
    n = len(plan.stages)
    exprs = [sa.func.count(sa.case((stage.in_(plan.stages[i:]), 1))).label(f"_s{i}") for i in range(n)]
    row = conn.execute(qc.select(*exprs, where=where)).mappings().one()
    counts = [int(row[f"_s{i}"] or 0) for i in range(n)]
    rows = [{"stage": s, "count": c,
             "conversion": quotient(c, counts[i - 1], 100, 2) if i else None,
             "overall_conversion": quotient(c, counts[0], 100, 2)}
            for i, (s, c) in enumerate(zip(plan.stages, counts, strict=True))]
    columns = [_col("stage", plan.stage.label, plan.stage.field.type, "dimension",
                    options=dict(zip(plan.stages, plan.labels, strict=True))),
               _col("count", "count", "integer"),
               _col("conversion", "conversion % / 转化率", "percent"),
               _col("overall_conversion", "overall % / 总转化率", "percent")]
    totals = {"count": counts[0], "conversion": quotient(counts[-1], counts[0], 100, 2)}
    return {"columns": columns, "rows": rows, "totals": totals}


# -- KPI --------------------------------------------------------------------------------------
def _period_conds(qc: QueryContext, period: Period | None) -> tuple[ColumnElement | None, ColumnElement | None]:
    if period is None:
        return None, None
    col = qc.column(period.path)
    span = timedelta(days=period.days)
    if value_kind(period.path.field) == "datetime":
        end: Any = qc.now.astimezone(UTC).replace(tzinfo=None)   # datetimes are stored as naive UTC
    else:
        end = qc.today()
    cur = sa.and_(col > end - span, col <= end)
    prev = sa.and_(col > end - 2 * span, col <= end - span)
    return cur, prev


def _kpi_parts(qc: QueryContext, plan: KpiPlan, cond: ColumnElement | None) -> dict[str, ColumnElement]:
    if plan.measure == "ratio":
        num = qc.filter(plan.numerator)
        den = qc.filter(plan.denominator) if plan.denominator else None
        return {"numerator": aggregate("count", None, _and(num, cond)),
                "denominator": aggregate("count", None, _and(den, cond))}
    col = qc.column(plan.path) if plan.path is not None else None
    if plan.measure == "nps":
        return {"responses": aggregate("count", col, cond),
                "promoters": aggregate("count", None, _and(col >= 9, cond)),
                "detractors": aggregate("count", None, _and(col <= 6, col.is_not(None), cond))}
    if plan.measure == "csat":
        return {"responses": aggregate("count", col, cond),
                "satisfied": aggregate("count", None, _and(col >= 4, col <= 5, cond))}
    return {"value": aggregate(plan.measure, col, cond)}


def _kpi_value(plan: KpiPlan, parts: dict[str, Any], tz) -> Any:
    if plan.measure == "ratio":
        return quotient(parts["numerator"], parts["denominator"], 100, 2)
    if plan.measure == "nps":
        return quotient((parts["promoters"] or 0) - (parts["detractors"] or 0), parts["responses"], 100, 2)
    if plan.measure == "csat":
        return quotient(parts["satisfied"], parts["responses"], 100, 2)
    integral = plan.path is not None and value_kind(plan.path.field) in ("integer", "ref")
    return measure_value(parts["value"], plan.measure, integral, tz)


def run_kpi(conn: Connection, qc: QueryContext, plan: KpiPlan, where: list, spec: dict) -> dict:
    cur, prev = _period_conds(qc, plan.period)
    exprs = [e.label(f"c_{k}") for k, e in _kpi_parts(qc, plan, cur).items()]
    if plan.period is not None:
        exprs += [e.label(f"p_{k}") for k, e in _kpi_parts(qc, plan, prev).items()]
    raw = conn.execute(qc.select(*exprs, where=where)).mappings().one()
    current = {k[2:]: v for k, v in raw.items() if k.startswith("c_")}
    value_type = {"count": "integer", "count_distinct": "integer", "nps": "score", "csat": "percent",
                  "ratio": "percent"}.get(plan.measure, "number")
    row: dict[str, Any] = {"value": _kpi_value(plan, current, qc.tz)}
    columns = [_col("value", plan.label, value_type)]
    if plan.period is not None:
        previous = {k[2:]: v for k, v in raw.items() if k.startswith("p_")}
        row["previous"] = _kpi_value(plan, previous, qc.tz)
        delta = None
        if isinstance(row["value"], int | float) and isinstance(row["previous"], int | float):
            delta = round(row["value"] - row["previous"], 4)
        row["change"] = delta
        row["change_pct"] = quotient(delta, abs(row["previous"]) if delta is not None else None, 100, 2)
        columns += [_col("previous", "previous period / 上期", value_type), _col("change", "change / 变化", "number"),
                    _col("change_pct", "change % / 变化率", "percent")]
    if plan.measure in ("nps", "csat", "ratio"):
        for key, value in current.items():
            row[key] = int(value or 0)
            columns.append(_col(key, key, "integer"))
        if plan.measure == "nps":
            row["passives"] = row["responses"] - row["promoters"] - row["detractors"]
            columns.append(_col("passives", "passives", "integer"))
    return {"columns": columns, "rows": [row], "totals": {}}


# -- RFM --------------------------------------------------------------------------------------
def run_rfm(conn: Connection, qc: QueryContext, plan: RfmPlan, where: list, spec: dict) -> dict:
    customer, date, amount = qc.column(plan.customer), qc.column(plan.date), qc.column(plan.amount)
    query = (qc.select(customer.label("_c"), sa.func.max(date).label("_last"), sa.func.count().label("_f"),
                       sa.func.sum(amount).label("_m"), sa.func.sum(sa.func.count()).over().label("_tf"),
                       sa.func.sum(sa.func.sum(amount)).over().label("_tm"),
                       where=[*where, customer.is_not(None), date.is_not(None)])
             .group_by(sa.literal_column("_c")).order_by(sa.literal_column("_c")))
    grouped = conn.execute(query).mappings().all()
    today = qc.today()
    rows = []
    for g in grouped:
        last = g["_last"]
        last_day = aware(last).astimezone(qc.tz).date() if hasattr(last, "hour") else last
        rows.append({"customer": g["_c"], "recency": (today - last_day).days, "frequency": int(g["_f"]),
                     "monetary": float(g["_m"] or 0)})
    n = len(rows)
    means = {k: (round(sum(r[k] for r in rows) / n, 4) if n else None) for k in ("recency", "frequency", "monetary")}
    names = {(r, f, m): (key, zh) for key, zh, r, f, m in SEGMENTS}
    for r in rows:
        hi = (r["recency"] < means["recency"], r["frequency"] > means["frequency"], r["monetary"] > means["monetary"])
        r["r"], r["f"], r["m"] = ("high" if h else "low" for h in hi)
        r["segment"], r["segment_label"] = names[hi]
    summary = [{"segment": key, "label": zh,
                "customers": sum(1 for r in rows if r["segment"] == key),
                "monetary": round(sum(r["monetary"] for r in rows if r["segment"] == key), 4)}
               for key, zh, *_ in SEGMENTS]
    sort = spec.get("sort") or ["-monetary"]
    for item in reversed([*sort, "customer"]):
        key = item.lstrip("+-")
        rows.sort(key=lambda r, k=key: (r[k] is None, r[k]), reverse=item.startswith("-"))
    limit = spec.get("limit")
    columns = [_col("customer", plan.customer.label, "lookup", "dimension"),
               _col("recency", "recency (days) / 最近一次消费(天)", "integer"),
               _col("frequency", "frequency / 消费频次", "integer"),
               _col("monetary", "monetary / 消费金额", "number"),
               _col("r", "R", "text", "dimension"), _col("f", "F", "text", "dimension"),
               _col("m", "M", "text", "dimension"),
               _col("segment", "segment / 客户分层", "text", "dimension", options={k: zh for k, zh, *_ in SEGMENTS}),
               _col("segment_label", "segment / 客户分层", "text", "dimension")]
    first = grouped[0] if grouped else {"_tf": 0, "_tm": None}
    totals = {"customers": n, "frequency": int(first["_tf"] or 0),
              "monetary": float(first["_tm"]) if first["_tm"] is not None else None}
    return {"columns": columns, "rows": rows[:limit] if limit else rows, "totals": totals,
            "means": means, "summary": summary}
