"""Small helpers every API module uses: parse a JSON body, answer JSON."""
from __future__ import annotations

import re
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
        body = request.get_json(force=True)
    except Exception as exc:  # werkzeug raises its own BadRequest subclasses
        raise BadRequest("The body is not valid JSON / 请求体不是有效的 JSON", {"_body": ["invalid JSON"]}) from exc
    return refuse_non_text(body)


# NUL (no PostgreSQL text holds it) and half of a UTF-16 pair (``"\\ud800"``: no encoder takes it)
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


def has_non_text(value: Any) -> bool:
    """Whether parsed JSON holds, in a key or a string, a character that is not text."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _NOT_TEXT.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def refuse_non_text(value: Any) -> Any:
    """A body holding NUL or a lone surrogate cannot be read as text: refused whole (400)."""
    if has_non_text(value):
        raise BadRequest("The body holds a NUL character or a lone UTF-16 surrogate (\\u0000, \\ud800-\\udfff), "
                         "which is not text / 请求体含有 NUL 或无效的 Unicode 代理字符", {"_body": ["not text"]})
    return value


def require_write(actor: Actor) -> None:
    if actor.token_scope == "read":
        raise PermissionDenied("This token is read-only / 该令牌为只读")


def check_token_app(actor: Actor, app_key: str) -> None:
    if actor.token_apps is not None and app_key not in actor.token_apps:
        raise PermissionDenied("This token is not valid for this app / 该令牌不可用于此应用")
