"""REST: reports (JSON, CSV, XLSX, SVG) and dashboards, over readable rows only."""
from __future__ import annotations

from flask import Response, jsonify, request

from engines import reports as rp
from engines.errors import DefinitionError, NotFound, PermissionDenied, ValidationFailed
from runtime.permissions import access_for, row_filter

from ..app import services
from ..auth import actor, tx
from . import bp
from .util import check_token_app, json_body

PARAMS = ("date_from", "date_to", "date_field", "owner", "filter", "limit", "sort")


def _params() -> dict:
    out = {}
    for key in PARAMS:
        value = request.args.get(key)
        if value not in (None, ""):
            out[key] = value
    if "limit" in out:
        try:
            out["limit"] = int(out["limit"])
        except ValueError:
            raise ValidationFailed("limit must be a whole number / limit 必须是整数", {"limit": ["invalid"]}) from None
    if "owner" in out:
        try:
            out["owner"] = [int(x) for x in str(out["owner"]).split(",")]
        except ValueError:
            raise ValidationFailed("owner is a user id / owner 必须是用户编号", {"owner": ["invalid"]}) from None
    if "sort" in out:
        out["sort"] = [s for s in out["sort"].split(",") if s]
    return out


def readable_where(ctx, capp, entity_key):
    access = access_for(ctx.actor, capp, entity_key)
    scope = access.scope("read")
    if scope == "none":
        raise PermissionDenied("You may not read this entity / 无权查看", {"entity": entity_key})
    return access, row_filter(ctx.actor, capp, entity_key, scope)


def _hidden_used(spec: dict, hidden) -> list[str]:
    names = set()
    for g in spec.get("group_by") or []:
        names.add((g.get("field") if isinstance(g, dict) else g).split(".")[0])
    for m in spec.get("measures") or []:
        if isinstance(m, dict) and m.get("field"):
            names.add(m["field"].split(".")[0])
    for key in ("stage_field", "customer", "date", "amount"):
        if spec.get(key):
            names.add(str(spec[key]))
    return sorted(names & set(hidden))


def run_one(ctx, capp, spec: dict, params: dict) -> dict:
    access, where = readable_where(ctx, capp, spec["entity"])
    blocked = _hidden_used(spec, access.hidden)
    if blocked:
        raise PermissionDenied(f"The report uses fields you may not read: {', '.join(blocked)} / 报表使用了无权查看的字段",
                               {"fields": blocked})
    return rp.run_report(ctx.conn, capp.app, spec, capp, tz=capp.tz, now=ctx.now, where=where, params=params)


@bp.get("/apps/<app_key>/reports/<report_key>")
def report(app_key, report_key):
    check_token_app(actor(), app_key)
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv", "xlsx", "svg"):
        raise ValidationFailed("format is json, csv, xlsx or svg / 格式无效", {"format": ["invalid"]})
    with tx() as ctx:
        capp = services().catalog.get(ctx.conn, app_key)
        spec = capp.app.report(report_key)
        if spec is None:
            raise NotFound(f"No report {report_key!r} / 报表不存在", {"report": report_key})
        result = run_one(ctx, capp, spec, _params())
    title = spec.get("label") or spec.get("title") or report_key
    if fmt == "json":
        return jsonify(result)
    if fmt == "svg":
        chart = request.args.get("chart") or spec.get("chart") or _default_chart(spec)
        return Response(rp.render_chart(chart, result, title), mimetype="image/svg+xml")
    if fmt == "csv":
        return Response(b"".join(rp.rows_to_csv(result["columns"], result["rows"])), mimetype="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{report_key}.csv"'})
    return Response(rp.rows_to_xlsx(result["columns"], result["rows"], sheet_title=report_key),
                    mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{report_key}.xlsx"'})


def _default_chart(spec: dict) -> str:
    return {"funnel": "funnel", "kpi": "number"}.get(spec.get("kind", "table"), "table")


@bp.get("/apps/<app_key>/dashboards/<key>")
def dashboard(app_key, key):
    check_token_app(actor(), app_key)
    filters = {k: v for k, v in _params().items() if k in ("date_from", "date_to", "date_field", "owner")}
    with tx() as ctx:
        capp = services().catalog.get(ctx.conn, app_key)
        if capp.app.dashboard(key) is None:
            raise NotFound(f"No dashboard {key!r} / 看板不存在", {"dashboard": key})

        def where_for(entity_key):
            return readable_where(ctx, capp, entity_key)[1]

        out = rp.run_dashboard(ctx.conn, capp.app, key, capp, tz=capp.tz, now=ctx.now, where_for=where_for,
                               filters=filters, svg=request.args.get("svg", "1") != "0")
    return jsonify(out)


@bp.post("/apps/<app_key>/reports/preview")
def report_preview(app_key):
    """Run an unsaved report spec (the builder's live preview) against the published tables, over the
    rows this user may read; answers ``{"result", "svg", "chart"}``. Nothing is stored."""
    check_token_app(actor(), app_key)
    body = json_body()
    spec = body.get("report", body) if isinstance(body, dict) else body
    with tx() as ctx:
        capp = services().catalog.get(ctx.conn, app_key)
        problems = rp.validate_report(capp.app, spec)
        if problems:
            raise DefinitionError("The report has problems / 报表定义有误", problems)
        spec = {**spec, "key": spec.get("key") or "preview"}
        result = run_one(ctx, capp, spec, {})
    chart = spec.get("chart") or _default_chart(spec)
    title = spec.get("label") or spec.get("title") or spec["key"]
    return jsonify({"result": result, "chart": chart, "svg": rp.render_chart(chart, result, str(title))})
