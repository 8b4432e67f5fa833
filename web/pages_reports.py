"""Report and dashboard pages of a generated app.

A report page shows the report's table (escaped by the template) and its chart. The chart is a
separate ``image/svg+xml`` answer loaded through ``<img>``, where a browser never runs scripts, so
no engine output is ever pasted into a page's markup. Rows are limited to what the user may read
(the same row filter as lists). When the report engine is not available the pages say so.
"""
from __future__ import annotations

from flask import Response, render_template

from engines.errors import JimuError, NotFound, PermissionDenied
from runtime.permissions import row_filter

from .app import services
from .auth import tx
from .i18n import gettext as _
from .pages_runtime import app_nav, bp, load_app

try:  # the report engine is its own package; pages degrade without it
    from engines import reports as report_engine
except ImportError:  # pragma: no cover - present in a full install
    report_engine = None


def _strings(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


def run_for_user(ctx, capp, spec: dict) -> dict:
    """The report's result over the rows the user may read."""
    entity_key = spec.get("entity")
    access = services().records.access(ctx, capp, entity_key)
    scope = access.scope("read")
    if scope == "none":
        raise PermissionDenied(_("You may not read these records"))
    names = {s.split(".")[0] for s in _strings({k: v for k, v in spec.items() if k not in ("label", "title")})}
    if names & access.hidden:
        raise PermissionDenied(_("This report uses a field hidden from you"), {"fields": sorted(names & access.hidden)})
    where = row_filter(ctx.actor, capp, entity_key, scope)
    return report_engine.run_report(ctx.conn, capp.app, spec, capp, tz=capp.tz, now=ctx.now, where=where)


def _spec(capp, key: str) -> dict:
    spec = capp.app.report(key)
    if spec is None:
        raise NotFound(_("No such report"), {"report": key})
    return spec


@bp.get("/apps/<app_key>/reports/<report_key>")
def report_page(app_key, report_key):
    result, error = None, None
    with tx() as ctx:
        capp = load_app(ctx, app_key)
        spec = _spec(capp, report_key)
        if report_engine is None:
            error = _("Reports are not available yet")
        else:
            try:
                result = run_for_user(ctx, capp, spec)
            except PermissionDenied:
                raise
            except JimuError as exc:
                error = exc.message
    return render_template("report.html", spec=spec, result=result, error=error,
                           title=str(spec.get("label") or spec.get("title") or report_key), **app_nav(capp))


@bp.get("/apps/<app_key>/reports/<report_key>/chart.svg")
def report_chart(app_key, report_key):
    if report_engine is None:
        raise NotFound(_("Reports are not available yet"))
    with tx() as ctx:
        capp = load_app(ctx, app_key)
        spec = _spec(capp, report_key)
        result = run_for_user(ctx, capp, spec)
    kind = spec.get("chart") or {"funnel": "funnel", "kpi": "number"}.get(spec.get("kind"), "table")
    kind = kind.get("type") if isinstance(kind, dict) else kind
    svg = report_engine.render_chart(str(kind), result, str(spec.get("label") or spec.get("title") or report_key))
    resp = Response(svg, mimetype="image/svg+xml")
    resp.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return resp


@bp.get("/apps/<app_key>/dashboards/<dash_key>")
def dashboard_page(app_key, dash_key):
    with tx() as ctx:
        capp = load_app(ctx, app_key)
        dash = capp.app.dashboard(dash_key)
        if dash is None:
            raise NotFound(_("No such dashboard"), {"dashboard": dash_key})
        widgets = []
        for w in dash.get("widgets") or []:
            if not isinstance(w, dict) or not w.get("report"):
                continue
            spec = capp.app.report(w["report"])
            if spec is None:
                continue
            item = {"key": w["report"], "title": str(w.get("title") or spec.get("label") or w["report"]),
                    "width": w.get("width") if w.get("width") in range(1, 13) else 6, "result": None, "error": None}
            if report_engine is None:
                item["error"] = _("Reports are not available yet")
            else:
                try:
                    item["result"] = run_for_user(ctx, capp, spec)
                except JimuError as exc:
                    item["error"] = exc.message
            widgets.append(item)
    return render_template("dashboard.html", dash=dash, widgets=widgets,
                           title=str(dash.get("label") or dash_key), **app_nav(capp))
