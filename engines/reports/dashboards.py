"""Dashboards: every widget's report run with the viewer's permissions and filters, and drawn.

Owns ``run_dashboard``: for each widget, the caller's ``where_for(entity)`` (row-level
permissions of that widget's entity) and the viewer's filters (a date range on a date field,
owners) go into the widget's query; the chart is the widget's, else the report's, else the kind's
default. A widget whose report is missing, invalid or not readable answers an ``error`` (the JSON
error body) instead of failing the whole dashboard; bad viewer filters fail it as a whole.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from engines.errors import JimuError, NotFound, ValidationFailed
from engines.model import App

from .charts import render_chart
from .compiler import TableProvider, check_request_filters
from .fields import PathError, is_temporal, resolve_path
from .runner import run_report
from .validation import DEFAULT_CHARTS

FILTER_KEYS = frozenset({"date_field", "date_from", "date_to", "owner"})


def _date_field(app: App, entity: str, candidates: list[Any]) -> str:
    """The first candidate that is a date field of ``entity`` (``created_at`` always is)."""
    for name in candidates:
        if not isinstance(name, str):
            continue
        try:
            if is_temporal(resolve_path(app, entity, name).field):
                return name
        except PathError:
            continue
    return "created_at"


def run_dashboard(conn: Connection, app: App, key: str, tables: TableProvider, *, tz: tzinfo, now: datetime,
                  where_for: Callable[[str], ColumnElement | None], filters: dict | None = None,
                  svg: bool = True) -> dict:
    """``{"key", "label", "widgets": [{"report", "width", "chart", "title", "result"|"error", "svg"?}]}``.

    ``filters``: ``date_from``/``date_to`` (local dates, inclusive) on ``date_field`` (else the
    widget's or dashboard's ``date_field``, else ``created_at``; a widget whose entity lacks the
    field uses the next candidate) and ``owner`` (a user id or a list of ids).
    """
    dash = app.dashboard(key)
    if dash is None:
        raise NotFound(f"no dashboard `{key}` / 没有看板 `{key}`")
    filters = dict(filters or {})
    unknown = sorted(set(filters) - FILTER_KEYS)
    if unknown:
        msg = f"unknown dashboard filter(s): {', '.join(unknown)} / 未知的看板筛选"
        raise ValidationFailed(msg, {k: [msg] for k in unknown})
    check_request_filters(filters)
    dated = bool(filters.get("date_from") or filters.get("date_to"))
    widgets = []
    for w in dash.get("widgets") or []:
        w = w if isinstance(w, dict) else {"report": w}
        spec = app.report(w.get("report"))
        kind = (spec or {}).get("kind", "table")
        chart = w.get("chart") or (spec or {}).get("chart") or DEFAULT_CHARTS.get(kind, "table")
        title = str(w.get("label") or (spec or {}).get("label") or w.get("report"))
        out: dict[str, Any] = {"report": w.get("report"), "width": w.get("width", 6), "chart": chart,
                               "title": title}
        widgets.append(out)
        if spec is None:
            out["error"] = NotFound(f"no report `{w.get('report')}` / 没有报表 `{w.get('report')}`").to_payload()["error"]
            continue
        params = {k: v for k, v in filters.items() if k != "date_field"}
        if dated and isinstance(spec.get("entity"), str) and app.entity(spec["entity"]) is not None:
            params["date_field"] = out["date_field"] = _date_field(
                app, spec["entity"], [filters.get("date_field"), w.get("date_field"), dash.get("date_field")])
        try:
            result = run_report(conn, app, spec, tables, tz=tz, now=now, where=where_for(spec["entity"]),
                                params=params)
        except JimuError as exc:
            out["error"] = exc.to_payload()["error"]
            continue
        out["result"] = result
        if svg:
            out["svg"] = render_chart(chart, result, title)
    return {"key": key, "label": str(dash.get("label") or key), "widgets": widgets}
