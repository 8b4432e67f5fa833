"""REST: live checking of an expression (the builder's condition inputs, the list filter bar).

``POST /api/v1/expressions/check`` with ``{"app", "entity", "expression", "expect"?: "bool"|...,
"source"?: "draft"|"published", "fields"?: [field specs]}`` answers ``{"ok", "error", "position",
"result_type"}``. Against the draft (builders only) the designer may send the entity's fields as
they are on its canvas, unsaved; against the published app the names are the ones the user may
read. Nothing is stored.
"""
from __future__ import annotations

import copy

from flask import jsonify

from builder import store
from builder.validation import field_env
from engines import expressions as ex
from engines.errors import PermissionDenied, ValidationFailed
from engines.model import App
from runtime import publish as pub

from ..app import services
from ..auth import actor, tx
from . import bp
from .util import check_token_app, json_body

EXPECT = {"bool": ex.BOOL, "number": ex.NUMBER, "text": ex.TEXT, "date": ex.DATE, "datetime": ex.DATETIME}


def _str(body: dict, key: str, *, required: bool = True, limit: int = 4000) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValidationFailed(f"{key} must be text / {key} 必须是文本", {key: ["required text"]})
    return value


def _draft_env(ctx, app_key: str, entity_key: str, fields) -> dict:
    pub.require_builder(ctx)
    doc = copy.deepcopy(store.get_draft(ctx.conn, app_key))
    entities = [e for e in doc.get("entities") or [] if isinstance(e, dict)]
    target = next((e for e in entities if e.get("key") == entity_key), None)
    if target is None:
        raise ValidationFailed(f"No entity {entity_key!r} in the draft / 草稿中没有该实体", {"entity": ["unknown"]})
    if isinstance(fields, list):
        target["fields"] = [f for f in fields if isinstance(f, dict) and isinstance(f.get("key"), str)
                            and isinstance(f.get("type"), str)]
    try:
        app = App.from_dict(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationFailed("The fields cannot be read / 字段无法读取", {"fields": [str(exc)]}) from exc
    return field_env(app, app.entity(entity_key))


def _published_env(ctx, app_key: str, entity_key: str) -> dict:
    capp = services().catalog.get(ctx.conn, app_key)
    access = services().records.access(ctx, capp, entity_key)
    if access.scope("read") == "none":
        raise PermissionDenied("No access / 无权访问")
    return {k: v for k, v in capp.env(entity_key).items() if k not in access.hidden}


@bp.post("/expressions/check")
def check_expression():
    body = json_body()
    if not isinstance(body, dict):
        raise ValidationFailed("The body must be an object / 请求体必须是对象", {"_body": ["object"]})
    app_key, entity_key = _str(body, "app", limit=40), _str(body, "entity", limit=40)
    text = _str(body, "expression")
    expect_name = body.get("expect")
    if expect_name is not None and expect_name not in EXPECT:
        raise ValidationFailed("expect must be bool, number, text, date or datetime / expect 无效", {"expect": ["invalid"]})
    check_token_app(actor(), app_key)
    with tx() as ctx:
        if body.get("source", "draft") == "published":
            env = _published_env(ctx, app_key, entity_key)
        else:
            env = _draft_env(ctx, app_key, entity_key, body.get("fields"))
    try:
        compiled = ex.compile_expression(text, env, expect=EXPECT.get(expect_name),
                                         allow_prev=bool(body.get("allow_prev")))
    except ex.ExpressionError as exc:
        return jsonify({"ok": False, "error": exc.message, "position": exc.position, "result_type": None})
    return jsonify({"ok": True, "error": None, "position": None, "result_type": compiled.result_type})
