"""REST: template packs — plan and import an uploaded or built-in pack, export an app as a pack,
uninstall an app keeping its export.

A pack arrives as a multipart upload (field ``file``), as a raw ``application/zip`` body, or as
JSON ``{"builtin": NAME}``; ``with_sample_data`` comes as a query parameter, a form field or a
JSON member. Only admins and builders may plan, import or export. The work is
``templates_library.install``'s; a bad pack answers 422 with every problem located, a name that
collides with another app 409, and nothing is written. Exporting with data and uninstalling are
for admins only (``templates_library.archive``, ``templates_library.uninstall``).
"""
from __future__ import annotations

import re
import tempfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Response, current_app, jsonify, request

from engines.errors import BadRequest, PermissionDenied, ValidationFailed
from templates_library.archive import full_export, write_full_export
from templates_library.export import export_app
from templates_library.install import builtin_pack_path, import_pack, plan_pack
from templates_library.loader import dump_pack, load_pack
from templates_library.uninstall import plan_uninstall, server_export_path, uninstall_app

from ..app import services
from ..auth import actor, tx
from . import bp
from .util import check_token_app, json_body, require_write

_TRUE = ("1", "true", "yes", "on")


def _flag(value) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE if value is not None else False


def _pack_from_request():
    """The uploaded (or named built-in) pack and the with_sample_data flag."""
    now = datetime.now(ZoneInfo(services().timezone))
    flag = request.args.get("with_sample_data")
    ctype = (request.mimetype or "").lower()
    if ctype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ValidationFailed("Upload the pack as the multipart field 'file' / 请以 file 字段上传模板包",
                                   {"file": ["required / 必填"]})
        flag = flag if flag is not None else request.form.get("with_sample_data")
        return load_pack(upload.read(), now=now), _flag(flag)
    if ctype in ("application/zip", "application/x-zip-compressed", "application/octet-stream"):
        data = request.get_data()
        if not data:
            raise BadRequest("The body is empty: send the pack's zip / 请求体为空，请发送模板包 zip", {"_body": ["empty"]})
        return load_pack(data, now=now), _flag(flag)
    body = json_body()
    if not isinstance(body, dict) or set(body) - {"builtin", "with_sample_data"}:
        raise ValidationFailed("Send a zip (multipart field 'file' or application/zip) or JSON "
                               "{\"builtin\": NAME} / 请上传 zip 或指定内置模板包",
                               {"_body": ["expected {\"builtin\": NAME, \"with_sample_data\"?}"]})
    name = body.get("builtin")
    path = builtin_pack_path(name) if isinstance(name, str) else None
    if path is None:
        raise ValidationFailed(f"No built-in pack named {name!r} / 没有此内置模板包", {"builtin": ["unknown pack"]})
    if flag is None:
        flag = body.get("with_sample_data")
    return load_pack(path, now=now), _flag(flag)


def _require_builder() -> None:
    a = actor()
    if not a.can_build:
        raise PermissionDenied("Only admins and builders may plan, import or export packs / "
                               "仅管理员和构建者可规划、导入或导出模板包", {"role": a.role})


@bp.post("/packs/plan")
def packs_plan():
    require_write(actor())
    _require_builder()
    pack, _ = _pack_from_request()
    check_token_app(actor(), str(pack.app.get("app")))
    with tx() as ctx:
        return jsonify(plan_pack(ctx.conn, pack))


@bp.post("/packs/import")
def import_():
    require_write(actor())
    _require_builder()
    pack, with_data = _pack_from_request()
    check_token_app(actor(), str(pack.app.get("app")))
    with tx() as ctx:
        out = import_pack(ctx, services(), pack, with_sample_data=with_data)
    return jsonify(out), 201


@bp.get("/apps/<app_key>/export")
def export(app_key):
    check_token_app(actor(), app_key)
    fmt = request.args.get("format") or "zip"
    if fmt not in ("zip", "json"):
        raise ValidationFailed("format must be zip or json / 格式须为 zip 或 json", {"format": ["zip or json"]})
    _require_builder()
    with_data = _flag(request.args.get("with_data"))
    if with_data and not actor().is_admin:
        # records leave without the app's permissions applied: admins only
        raise PermissionDenied("Only admins may export an app with its data / 仅管理员可连同数据导出应用",
                               {"with_data": ["admins only"]})
    with tx() as ctx:
        if with_data and fmt == "zip":
            # the full export: the same bytes an uninstall keeps (its SHA-256 confirms an uninstall)
            full = full_export(ctx.conn, app_key, default_tz=services().timezone)
            pack = full.pack
        else:
            pack = export_app(ctx.conn, app_key, with_data=with_data, default_tz=services().timezone)
    if fmt == "json":
        return jsonify({"pack": pack.name, "format_version": pack.format_version, "version": pack.version,
                        "title": pack.title, "description": pack.description, "requires": pack.requires,
                        "app": pack.app, "sample_data": pack.sample_data})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{pack.name}.zip"
        path = write_full_export(full, out) if with_data else dump_pack(pack, out)
        data = path.read_bytes()
    filename = f"{pack.name}-{pack.version}.zip"
    return Response(data, mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


@bp.post("/apps/<app_key>/uninstall")
def uninstall(app_key):
    """``{"confirm": false}`` answers the plan; ``{"confirm": true, "export_sha256": HEX}`` uninstalls,
    keeping the export (the zip of ``GET /apps/{app}/export?with_data=1``, whose SHA-256 the caller
    sends to show they hold it) in the instance's data folder. No path ever comes from the request."""
    a = actor()
    require_write(a)
    check_token_app(a, app_key)
    if not a.is_admin:
        raise PermissionDenied("Only platform admins may uninstall an app / 仅平台管理员可卸载应用", {"role": a.role})
    body = json_body(allow_empty=True)
    if not isinstance(body, dict) or set(body) - {"confirm", "export_sha256"}:
        raise ValidationFailed("Send {\"confirm\": false} for the plan, or {\"confirm\": true, \"export_sha256\": "
                               "HEX} to uninstall / 请发送 confirm（及 export_sha256）",
                               {"_body": ["expected {\"confirm\": bool, \"export_sha256\"?: HEX}"]})
    confirm = body.get("confirm", False)
    if not isinstance(confirm, bool):
        raise ValidationFailed("confirm must be true or false / confirm 须为 true 或 false",
                               {"confirm": ["true or false"]})
    svc = services()
    if not confirm:
        with tx() as ctx:
            return jsonify(plan_uninstall(ctx, app_key))
    sha = body.get("export_sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise ValidationFailed("Download GET /apps/{app}/export?with_data=1 first and send the SHA-256 of that zip "
                               "as export_sha256 / 请先下载含数据的导出，并提交其 SHA-256",
                               {"export_sha256": ["the SHA-256 (64 hex digits) of the downloaded export"]})
    with tx() as ctx:
        target = server_export_path(current_app.config["JIMU_DATA_DIR"], app_key, ctx.now)
        out = uninstall_app(ctx, svc.catalog, app_key, target, default_tz=svc.timezone, export_sha256=sha)
    return jsonify(out)
