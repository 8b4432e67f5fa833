"""Small helpers every API module uses: parse a JSON body, answer JSON."""
from __future__ import annotations

from typing import Any

from flask import request

from engines.errors import BadRequest, PermissionDenied
from runtime.context import Actor


def json_body(*, allow_empty: bool = False) -> Any:
    raw = request.get_data(cache=True)
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest("A JSON body is required / 需要 JSON 请求体", {"_body": ["empty"]})
    try:
        return request.get_json(force=True)
    except Exception as exc:  # werkzeug raises its own BadRequest subclasses
        raise BadRequest("The body is not valid JSON / 请求体不是有效的 JSON", {"_body": ["invalid JSON"]}) from exc


def require_write(actor: Actor) -> None:
    if actor.token_scope == "read":
        raise PermissionDenied("This token is read-only / 该令牌为只读")


def check_token_app(actor: Actor, app_key: str) -> None:
    if actor.token_apps is not None and app_key not in actor.token_apps:
        raise PermissionDenied("This token is not valid for this app / 该令牌不可用于此应用")
