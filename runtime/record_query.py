"""List queries over record tables: filter (the expression language, pushed down to SQL), sort,
field selection, offset and keyset paging, and the permission row filter ANDed in.

Also resolves names for expressions: plain columns, and dotted paths through lookups as scalar
subqueries. Writing records lives in ``runtime.records``.
"""
from __future__ import annotations

import base64
import json
from typing import Any

import sqlalchemy as sa

from engines import expressions as ex
from engines.errors import BadRequest, PermissionDenied, ValidationFailed
from engines.model import SYSTEM_FIELDS

from .catalog import CompiledApp
from .record_values import suggest

MAX_PAGE_SIZE = 500


def resolver(capp: CompiledApp, entity_key: str):
    """path -> SQL expression, for ``Compiled.to_sql``."""
    table = capp.tables[entity_key]
    entity = capp.entity(entity_key)

    def resolve(path: str):
        parts = path.split(".")
        if len(parts) == 1:
            return table.c[parts[0]]
        f = entity.field(parts[0])
        target = capp.tables[f.target]
        return sa.select(target.c[parts[1]]).where(target.c.id == table.c[parts[0]]).scalar_subquery()

    return resolve


def filter_clause(capp: CompiledApp, entity_key: str, text: str, *, now, hidden=frozenset()):
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        compiled = capp.compile(text, entity_key, expect=ex.BOOL)
    except ex.ExpressionError as exc:
        raise ValidationFailed(f"Bad filter: {exc.message} / 筛选条件有误",
                               {"filter": [exc.message], "position": exc.position}) from exc
    blocked = sorted({n.split(".")[0] for n in compiled.names} & hidden)
    if blocked:
        raise PermissionDenied(f"You may not filter on {', '.join(blocked)} / 无权按该字段筛选", {"filter": blocked})
    try:
        return compiled.to_sql(resolver(capp, entity_key), ex.EvalContext(now=now, tz=capp.tz),
                               capp_dialect(capp))
    except ex.ExpressionError as exc:
        raise ValidationFailed(f"Bad filter: {exc.message} / 筛选条件有误", {"filter": [exc.message]}) from exc


def capp_dialect(capp: CompiledApp) -> str:
    return capp.dialect


def sort_columns(capp: CompiledApp, entity_key: str, sort: str | None, hidden=frozenset()) -> list[tuple[str, bool]]:
    """[(column key, descending)], always ending with id."""
    table = capp.tables[entity_key]
    entity = capp.entity(entity_key)
    out: list[tuple[str, bool]] = []
    for part in (sort or "-id").split(","):
        part = part.strip()
        if not part:
            continue
        desc = part.startswith("-")
        key = part.lstrip("-+")
        f = entity.field(key)
        if key not in SYSTEM_FIELDS and (f is None or key not in table.c):
            raise ValidationFailed(f"Cannot sort by {key!r} / 无法按该字段排序",
                                   {"sort": [f"unknown field {key!r}{suggest(key, table.c.keys())}"]})
        if key in hidden:
            raise PermissionDenied(f"You may not sort by {key} / 无权按该字段排序", {"sort": [key]})
        out.append((key, desc))
    if not out or out[-1][0] != "id":
        out.append(("id", out[0][1] if out else True))
    return out


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, default=str, ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        pad = "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(cursor + pad))
        if not isinstance(values, list):
            raise ValueError
        return values
    except (ValueError, TypeError) as exc:
        raise BadRequest("Bad cursor / 无效的游标", {"cursor": ["cannot be decoded"]}) from exc


def keyset_clause(table, order: list[tuple[str, bool]], values: list[Any]):
    """Rows strictly after ``values`` in the given order (ties broken by id)."""
    if len(values) != len(order):
        raise BadRequest("Bad cursor / 无效的游标", {"cursor": ["does not match the sort"]})
    clauses = []
    for i, (key, desc) in enumerate(order):
        col = table.c[key]
        val = _cursor_value(col, values[i])
        eqs = [table.c[k] == _cursor_value(table.c[k], values[j]) for j, (k, _d) in enumerate(order[:i])]
        if val is None:
            cmp = col.is_not(None) if not desc else sa.false()
        else:
            cmp = (col < val) if desc else (col > val)
            if desc:
                cmp = sa.or_(cmp, col.is_(None))
        clauses.append(sa.and_(*eqs, cmp))
    return sa.or_(*clauses)


def _cursor_value(col, value):
    if value is None:
        return None
    try:
        return col.type.python_type(value) if col.type.python_type in (int, float) else value
    except (NotImplementedError, TypeError, ValueError):
        return value


def order_by(table, order: list[tuple[str, bool]]):
    out = []
    for key, desc in order:
        col = table.c[key]
        # blanks last in both directions, the same on SQLite and PostgreSQL
        out.append(col.is_(None).asc())
        out.append(col.desc() if desc else col.asc())
    return out


def page_params(page: Any, page_size: Any) -> tuple[int, int]:
    try:
        page = int(page or 1)
        page_size = int(page_size or 50)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed("page and page_size must be whole numbers / 页码须为整数",
                               {"page": ["must be a whole number"]}) from exc
    if page < 1 or page > 1_000_000:
        raise ValidationFailed("page must be ≥ 1 / 页码须 ≥ 1", {"page": ["must be between 1 and 1000000"]})
    if page_size < 1 or page_size > MAX_PAGE_SIZE:
        raise ValidationFailed(f"page_size must be 1–{MAX_PAGE_SIZE} / 每页条数须在 1–{MAX_PAGE_SIZE}",
                               {"page_size": [f"must be between 1 and {MAX_PAGE_SIZE}"]})
    return page, page_size
