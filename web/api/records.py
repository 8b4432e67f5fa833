"""REST: records of published entities (list, create one or many, read, update, delete) and a
record's timeline."""
from __future__ import annotations

from flask import Response, jsonify, request

from engines.errors import PermissionDenied, ValidationFailed
from runtime import audit
from runtime.permissions import access_for

from ..app import services
from ..auth import actor, tx
from . import bp
from .util import check_token_app, json_body, require_write


def _fields_param():
    raw = request.args.get("fields")
    if not raw:
        return None
    return [f.strip() for f in raw.split(",") if f.strip()]


@bp.get("/apps/<app_key>/<entity>")
def list_records(app_key, entity):
    check_token_app(actor(), app_key)
    fmt = request.args.get("format")
    if fmt in ("csv", "xlsx"):
        from .exports import export_records
        return export_records(app_key, entity, fmt)
    if fmt not in (None, "", "json"):
        raise ValidationFailed("format must be json, csv or xlsx / 格式无效", {"format": ["json, csv or xlsx"]})
    with tx() as ctx:
        out = services().records.list(
            ctx, app_key, entity, filter=request.args.get("filter"), sort=request.args.get("sort"),
            page=request.args.get("page", 1), page_size=request.args.get("page_size", 50),
            fields=_fields_param(), cursor=request.args.get("cursor"), search=request.args.get("q"))
    return jsonify(out)


@bp.post("/apps/<app_key>/<entity>")
def create_records(app_key, entity):
    require_write(actor())
    check_token_app(actor(), app_key)
    body = json_body()
    with tx() as ctx:
        if isinstance(body, list):
            out = services().records.create_many(ctx, app_key, entity, body)
        else:
            out = services().records.create(ctx, app_key, entity, body)
    return jsonify(out), 201


@bp.get("/apps/<app_key>/<entity>/<record_id>")
def get_record(app_key, entity, record_id):
    check_token_app(actor(), app_key)
    with tx() as ctx:
        return jsonify(services().records.get(ctx, app_key, entity, record_id))


@bp.patch("/apps/<app_key>/<entity>/<record_id>")
def update_record(app_key, entity, record_id):
    require_write(actor())
    check_token_app(actor(), app_key)
    body = json_body()
    with tx() as ctx:
        out = services().records.update(ctx, app_key, entity, record_id, body,
                                        if_match=request.headers.get("If-Match"))
    return jsonify(out)


@bp.delete("/apps/<app_key>/<entity>/<record_id>")
def delete_record(app_key, entity, record_id):
    require_write(actor())
    check_token_app(actor(), app_key)
    with tx() as ctx:
        services().records.delete(ctx, app_key, entity, record_id)
    return Response(status=204)


@bp.get("/apps/<app_key>/<entity>/<record_id>/timeline")
def timeline(app_key, entity, record_id):
    check_token_app(actor(), app_key)
    with tx() as ctx:
        rec = services().records.get(ctx, app_key, entity, record_id)   # 404 when not readable
        capp = services().catalog.get(ctx.conn, app_key)
        access = access_for(ctx.actor, capp, entity)
        if access.scope("read") == "none":
            raise PermissionDenied("No access / 无权访问")
        items = audit.timeline(ctx.conn, app_key, entity, rec["id"], hidden=access.hidden)
    return jsonify({"items": items})
