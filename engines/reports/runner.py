"""Running a report: validate, compile through its kind, execute on the caller's connection.

Owns ``run_report`` (the one entry point the records service and the web layer call, with the
caller's row-level ``where`` ANDed into every query), the per-request ``params`` (extra filter,
limit, sort, date range, owner) and ``drilldown_filter``. The kinds themselves live in
``table.py`` and ``kinds.py``.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from types import MappingProxyType
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from engines.errors import DefinitionError, ValidationFailed
from engines.model import App

from .compiler import QueryContext, TableProvider
from .kinds import run_funnel, run_kpi, run_rfm
from .table import cell_filter, drilldown_conditions, literal, run_table
from .validation import check_report

PARAM_KEYS = frozenset({"filter", "limit", "sort", "date_field", "date_from", "date_to", "owner"})
RUNNERS: Mapping[str, Any] = MappingProxyType({
    "table": lambda conn, qc, plan, where, spec: run_table(conn, qc, plan, where),
    "funnel": run_funnel,
    "kpi": run_kpi,
    "rfm": run_rfm,
})


def effective_spec(spec: dict, params: Mapping | None) -> dict:
    """The spec with a request's ``limit``/``sort`` applied (they are checked like saved ones)."""
    params = params or {}
    unknown = sorted(set(params) - PARAM_KEYS)
    if unknown:
        msg = f"unknown report parameter(s): {', '.join(unknown)} / 未知的报表参数"
        raise ValidationFailed(msg, {k: [msg] for k in unknown})
    merged = dict(spec)
    for key in ("limit", "sort"):
        if params.get(key) is not None:
            merged[key] = params[key]
    return merged


def run_report(conn: Connection, app: App, spec: dict, tables: TableProvider, *, tz: tzinfo, now: datetime,
               where: ColumnElement | None = None, params: Mapping | None = None) -> dict:
    """Run ``spec`` on ``conn``: ``{"columns": [{"key", "label", "type", "role"}], "rows", "totals"}``.

    Table reports add ``truncated`` (true when the 10,000-row cap, not the spec's limit, cut rows);
    RFM adds ``means`` and ``summary`` (customers per segment). A column may carry ``options``
    (value -> label of a select) and, for pivot cells, ``pivot`` ({group key: value}).

    ``where`` (the caller's row-level permission filter on the report's entity) is ANDed into every
    query, so a report only ever counts readable rows. ``params`` may add a ``filter`` expression,
    override ``limit``/``sort``, and narrow by ``date_from``/``date_to`` (local dates, inclusive) on
    ``date_field`` (default ``created_at``) and by ``owner`` (an id or a list of ids).
    """
    spec = effective_spec(spec, params)
    problems, plan = check_report(app, spec)
    extra_filter = (params or {}).get("filter")
    if extra_filter is not None and not problems:
        extra, _ = check_report(app, {**spec, "filter": extra_filter})
        problems += [p for p in extra if p["location"] == "filter"]
    if problems:
        raise DefinitionError("The report is not valid / 报表定义无效", problems)
    qc = QueryContext(app, spec["entity"], tables, tz=tz, now=now, dialect=conn.dialect)
    clauses = qc.where(spec.get("filter"), where, params)
    return RUNNERS[spec.get("kind", "table")](conn, qc, plan, clauses, spec)


def drilldown_filter(app: App, spec: dict, cell_row: Mapping, column: Mapping | None = None) -> str:
    """An expression selecting the records behind a report row (and a pivot column of a table).

    The spec's own filter is kept; each group value becomes a condition (a bucket becomes a
    half-open date range, a blank value ``ISBLANK``); a funnel stage selects the records at it or a
    later stage, an RFM row its customer's orders. Run it as a list filter on the entity.
    """
    problems, plan = check_report(app, spec)
    if problems:
        raise DefinitionError("The report is not valid / 报表定义无效", problems)
    kind = spec.get("kind", "table")
    if kind == "table":
        conds = drilldown_conditions(plan, dict(cell_row), dict(column) if column else None)
    elif kind == "funnel":
        stage = cell_row.get("stage")
        if stage not in plan.stages:
            msg = f"`{stage}` is not a stage of this funnel / `{stage}` 不是此漏斗的阶段"
            raise ValidationFailed(msg, {"stage": [msg]})
        reached = ", ".join(literal(s) for s in plan.stages[plan.stages.index(stage):])
        conds = [f"{plan.stage.path} in [{reached}]"]
    elif kind == "rfm":
        conds = [f"{plan.customer.path} == {literal(cell_row.get('customer'))}"]
    else:
        conds = []
    return cell_filter(spec.get("filter"), conds)
