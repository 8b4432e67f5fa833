"""The report engine's bridge to the expression language (``engines.expressions``).

Owns the field environment a report filter is checked against (the entity's fields, system
fields and, through lookups, the target's fields) and the two uses of a filter: checking it at save
time (message and character position) and compiling it to a SQLAlchemy clause at run time, with
paths resolved by the report's query (which adds the lookup joins). Parsing, type checking and SQL
generation of expressions belong to ``engines.expressions``.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from engines import expressions as ex
from engines.model import App, Field

from .fields import MAX_HOPS, SYSTEM_FIELD_TYPES, entity_field, resolve_path, value_kind

DEFAULT_TZ = "Asia/Shanghai"

# value_kind -> the expression language's type names (engines.expressions.types).
_KIND_TO_TYPE = MappingProxyType({"number": "number", "integer": "number", "ref": "number", "text": "text",
                                  "bool": "bool", "date": "date", "datetime": "datetime", "list": "list"})


def expression_env(app: App, entity_key: str, _depth: int = 0) -> dict[str, Any]:
    """Field key -> FieldSig for ``entity_key``; a lookup's sig carries its target's environment."""
    entity = app.entity(entity_key)
    env: dict[str, Any] = {}
    if entity is None:
        return env
    keys = [f.key for f in entity.fields] + [k for k in SYSTEM_FIELD_TYPES if entity.field(k) is None]
    for key in keys:
        f = entity_field(entity, key)
        target = None
        if f.type == "lookup" and f.target and app.entity(f.target) is not None and _depth < MAX_HOPS:
            target = expression_env(app, f.target, _depth + 1)
        options = tuple(o.value for o in f.options) or None
        env[key] = ex.FieldSig(_KIND_TO_TYPE[value_kind(f)], target=target, options=options)
    return env


def _stand_in_type(f: Field) -> sa.types.TypeEngine:
    """A column type like the real one, for compiling a filter to SQL without tables."""
    kind = value_kind(f)
    if kind == "number":
        return sa.Float() if f.type in ("number", "rollup", "formula") else sa.Numeric(18, f.scale)
    return {"integer": sa.Integer(), "ref": sa.Integer(), "bool": sa.Boolean(), "date": sa.Date(),
            "datetime": sa.DateTime(), "list": sa.Text()}.get(kind, sa.String())


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TZ)
    except (ValueError, ZoneInfoNotFoundError):   # the app's own validation reports a bad zone
        return ZoneInfo(DEFAULT_TZ)


def check_filter(app: App, entity_key: str, text: Any) -> tuple[str, int | None] | None:
    """None when ``text`` is a valid boolean filter on the entity, else (message, position).

    Report filters always run in SQL, so the check includes compiling to PostgreSQL's SQL against
    stand-in columns: what the language cannot push down is refused here, located.
    """
    if not isinstance(text, str) or not text.strip():
        return ("a filter must be a non-empty expression / 筛选条件必须是表达式", None)

    def stand_in(path: str) -> ColumnElement:
        return sa.column(path.replace(".", "__"), _stand_in_type(resolve_path(app, entity_key, path).field))

    try:
        compiled = ex.compile_expression(text, expression_env(app, entity_key), expect=ex.BOOL)
        ctx = ex.EvalContext(now=datetime.now(UTC), tz=_zone(app.timezone))
        compiled.to_sql(stand_in, ctx, "postgresql")
    except ex.ExpressionError as exc:
        return (getattr(exc, "message", None) or str(exc), getattr(exc, "position", None))
    return None


def filter_clause(app: App, entity_key: str, text: str, resolve: Callable[[Any], ColumnElement], *,
                  now: datetime, tz: tzinfo, dialect: str) -> ColumnElement:
    """The SQL clause of a (valid) filter; ``resolve`` maps a path to a column of the query."""
    compiled = ex.compile_expression(text, expression_env(app, entity_key), expect=ex.BOOL)
    return compiled.to_sql(resolve, ex.EvalContext(now=now, tz=tz), dialect)
