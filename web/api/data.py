"""REST: data in and around records — bulk import (CSV/XLSX) and sharing one record."""
from __future__ import annotations

import json

from flask import Response, jsonify, request

from engines.errors import BadRequest, ValidationFailed
from runtime import import_files, importer, shares

from ..app import services
from ..auth import actor, tx
from . import bp
from .util import check_token_app, has_non_text, json_body, require_write

_YES = ("1", "true", "yes", "on")


def _capp(ctx, app_key: str, entity: str):
    capp = services().catalog.get(ctx.conn, app_key)
    capp.entity(entity)
    return capp


# ---------------------------------------------------------------- shares
@bp.get("/apps/<app_key>/<entity>/<record_id>/shares")
def list_shares(app_key, entity, record_id):
    check_token_app(actor(), app_key)
    with tx() as ctx:
        items = shares.list_shares(ctx, _capp(ctx, app_key, entity), entity, record_id)
    return jsonify({"items": items, "total": len(items)})


@bp.post("/apps/<app_key>/<entity>/<record_id>/shares")
def add_share(app_key, entity, record_id):
    require_write(actor())
    check_token_app(actor(), app_key)
    body = json_body()
    with tx() as ctx:
        share, created = shares.add_share(ctx, _capp(ctx, app_key, entity), entity, record_id, body)
    return jsonify(share), 201 if created else 200


@bp.delete("/apps/<app_key>/<entity>/<record_id>/shares/<share_id>")
def remove_share(app_key, entity, record_id, share_id):
    require_write(actor())
    check_token_app(actor(), app_key)
    with tx() as ctx:
        shares.remove_share(ctx, _capp(ctx, app_key, entity), entity, record_id, share_id)
    return Response(status=204)


# ---------------------------------------------------------------- import
def _import_options() -> importer.ImportOptions:
    form = request.form
    mapping = None
    if form.get("mapping", "").strip():
        try:
            mapping = json.loads(form["mapping"])
            if has_non_text(mapping):
                raise ValueError("NUL or a lone UTF-16 surrogate is not text")
        except ValueError:
            raise ValidationFailed('mapping must be JSON like {"列名": "field"} / 映射必须是 JSON',
                                   {"mapping": ["invalid JSON"]}) from None
    unknown = [k for k in form if k not in ("mapping", "dedupe", "on_duplicate", "mode", "dry_run")]
    if unknown:
        raise ValidationFailed(f"Unknown form field(s): {', '.join(unknown)} / 未知字段",
                               {k: ["unknown field / 未知字段"] for k in unknown})
    dry = form.get("dry_run", "").strip().lower()
    if dry not in ("", "0", "false", "no", "off", *_YES):
        raise ValidationFailed("dry_run must be true or false / dry_run 必须是 true 或 false", {"dry_run": ["invalid"]})
    return importer.ImportOptions(mapping=mapping, dedupe=form.get("dedupe") or None,
                                  on_duplicate=form.get("on_duplicate") or "skip",
                                  mode=form.get("mode") or "all_or_nothing", dry_run=dry in _YES)


@bp.post("/apps/<app_key>/<entity>/import")
def import_records(app_key, entity):
    who = actor()
    require_write(who)
    check_token_app(who, app_key)
    # room for the file and the form fields around it; the file itself is checked below
    request.max_content_length = import_files.MAX_BYTES + 1024 * 1024
    if not request.mimetype.startswith("multipart/"):
        raise BadRequest("Send the file as multipart/form-data, field \"file\" / 请以 multipart 表单上传文件",
                         {"file": ["required"]})
    upload = request.files.get("file")
    if upload is None:
        raise ValidationFailed('The file is missing: multipart field "file" / 缺少文件', {"file": ["required"]})
    try:
        opts = _import_options()
        data = upload.stream.read(import_files.MAX_BYTES + 1)
    finally:
        upload.close()   # a large upload is spooled to a temporary file
    if len(data) > import_files.MAX_BYTES:
        raise import_files.too_large()
    sheet = import_files.open_sheet(data, upload.filename)
    with tx() as ctx:
        report = importer.run_import(services().records, ctx, app_key, entity, sheet, opts)
    return jsonify(report)
