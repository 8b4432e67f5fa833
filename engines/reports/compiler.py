"""The query side of a report: columns, lookup joins, buckets, filters and result values.

Owns ``QueryContext``: one per query, it turns resolved paths into columns of the caller's tables
(adding one LEFT JOIN per lookup hop, aliased, so a lookup used twice joins once), date buckets
into SQL, the spec filter plus the caller's row-level ``where`` plus per-request filters (date
range, owner) into one WHERE clause, and SQL aggregates with an optional condition (for pivot
columns and funnels). It also turns database values into JSON-friendly ones. It never executes
anything; the kinds do, on the caller's connection.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from engines.errors import ValidationFailed
from engines.model import App

from .buckets import YEARS_AHEAD, bucket_expr, offset_transitions
from .expr import filter_clause
from .fields import PathError, ResolvedPath, resolve_path, value_kind
from .spec import GroupItem, Measure


class TableProvider(Protocol):
    def table(self, entity_key: str) -> sa.Table: ...
    def column(self, entity_key: str, field_key: str) -> sa.Column: ...


def aware(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


class QueryContext:
    def __init__(self, app: App, entity_key: str, tables: TableProvider, *, tz: tzinfo, now: datetime,
                 dialect: Any):
        self.app, self.entity_key, self.tables, self.tz = app, entity_key, tables, tz
        self.now = aware(now)
        self.dialect = dialect
        self.dialect_name = getattr(dialect, "name", dialect)
        self.base = tables.table(entity_key)
        self._aliases: dict[tuple[tuple[str, str], ...], sa.Alias] = {}
        self.from_clause: sa.FromClause = self.base
        self._transitions: list[tuple[datetime, int]] | None = None

    # -- columns and joins -------------------------------------------------------------------
    def _source(self, hops: tuple[tuple[str, str], ...]) -> sa.FromClause:
        if not hops:
            return self.base
        if hops in self._aliases:
            return self._aliases[hops]
        parent = self._source(hops[:-1])
        entity_key, lookup_key = hops[-1]
        target = self.app.entity(entity_key).field(lookup_key).target
        alias = self.tables.table(target).alias(f"j{len(self._aliases) + 1}")
        link = self._bind(parent, self.tables.column(entity_key, lookup_key))
        target_id = alias.corresponding_column(self.tables.column(target, "id"))
        self.from_clause = self.from_clause.outerjoin(alias, target_id == link)
        self._aliases[hops] = alias
        return alias

    @staticmethod
    def _bind(source: sa.FromClause, col: sa.Column) -> ColumnElement:
        if isinstance(source, sa.Table):
            return col
        found = source.corresponding_column(col)
        if found is None:
            raise LookupError(f"column {col!r} is not part of {source!r}")
        return found

    def column(self, path: ResolvedPath) -> ColumnElement:
        return self._bind(self._source(path.hops), self.tables.column(path.entity, path.field.key))

    def resolve(self, path: Any) -> ColumnElement:
        """For the expression compiler: a dotted string or a sequence of keys -> column."""
        text = path if isinstance(path, str) else ".".join(path)
        return self.column(resolve_path(self.app, self.entity_key, text))

    def bucket(self, path: ResolvedPath, bucket: str) -> ColumnElement:
        return bucket_expr(self.column(path), bucket, is_datetime=value_kind(path.field) == "datetime",
                           dialect=self.dialect_name, tz=self.tz, transitions=self.transitions)

    def transitions(self) -> list[tuple[datetime, int]]:
        """The zone's UTC offsets since 1970, computed once per query (SQLite buckets need them)."""
        if self._transitions is None:
            self._transitions = offset_transitions(self.tz, self.now.year + YEARS_AHEAD)
        return self._transitions

    def group_expr(self, g: GroupItem) -> ColumnElement:
        return self.bucket(g.path, g.bucket) if g.bucket else self.column(g.path)

    # -- filters -----------------------------------------------------------------------------
    def filter(self, text: str | None) -> ColumnElement | None:
        if not text:
            return None
        return filter_clause(self.app, self.entity_key, text, self.resolve, now=self.now, tz=self.tz,
                             dialect=self.dialect_name)

    def request_filters(self, params: dict | None) -> list[ColumnElement]:
        """Per-user filters of a report page or dashboard: a date range on a field, owners."""
        start, end, owners = check_request_filters(params)
        out: list[ColumnElement] = []
        if start or end:
            name = (params or {}).get("date_field") or "created_at"
            try:
                path = resolve_path(self.app, self.entity_key, name)
            except PathError as exc:
                raise ValidationFailed(str(exc), {"date_field": [str(exc)]}) from None
            kind = value_kind(path.field)
            if kind not in ("date", "datetime"):
                msg = f"`{name}` is not a date / `{name}` 不是日期字段"
                raise ValidationFailed(msg, {"date_field": [msg]})
            col = self.column(path)
            if start:
                out.append(col >= (self.utc_bound(start) if kind == "datetime" else start))
            if end:
                out.append(col < self.utc_bound(end + timedelta(days=1)) if kind == "datetime" else col <= end)
        if owners is not None:
            out.append(self.resolve("owner").in_(owners))
        return out

    def utc_bound(self, day: date) -> datetime:
        """Local midnight of ``day`` as the naive UTC the datetime columns store."""
        return datetime.combine(day, time(), tzinfo=self.tz).astimezone(UTC).replace(tzinfo=None)

    def today(self) -> date:
        return self.now.astimezone(self.tz).date()

    def where(self, spec_filter: str | None, where: ColumnElement | None, params: dict | None
              ) -> list[ColumnElement]:
        clauses = [self.filter(spec_filter), where, self.filter((params or {}).get("filter"))]
        return [c for c in clauses if c is not None] + self.request_filters(params)

    def select(self, *cols, where: list[ColumnElement] | None = None) -> sa.Select:
        query = sa.select(*cols).select_from(self.from_clause)
        return query.where(*where) if where else query

    # -- aggregates --------------------------------------------------------------------------
    def aggregate(self, m: Measure, cond: ColumnElement | None = None) -> ColumnElement:
        col = self.column(m.path) if m.path is not None else None
        return aggregate(m.agg, col, cond)


def aggregate(agg: str, col: ColumnElement | None, cond: ColumnElement | None = None) -> ColumnElement:
    """COUNT(*) / AGG(col), or its conditional form AGG(CASE WHEN cond THEN col END)."""
    if col is None:
        return sa.func.count() if cond is None else sa.func.count(sa.case((cond, 1)))
    arg = col if cond is None else sa.case((cond, col))
    if agg == "count":
        return sa.func.count(arg)
    if agg == "count_distinct":
        return sa.func.count(sa.distinct(arg))
    return getattr(sa.func, agg)(arg)


def check_request_filters(params: dict | None) -> tuple[date | None, date | None, list[int] | None]:
    """(date_from, date_to, owners) of request filters; ValidationFailed naming a bad one."""
    params = params or {}
    start, end = _day(params.get("date_from"), "date_from"), _day(params.get("date_to"), "date_to")
    owner = params.get("owner")
    owners = None
    if owner is not None:
        owners = list(owner) if isinstance(owner, list | tuple) else [owner]
        if not owners or not all(isinstance(o, int) and not isinstance(o, bool) and 0 < o <= 2**62 for o in owners):
            msg = "owner must be a user id or a list of ids / owner 必须是用户编号"
            raise ValidationFailed(msg, {"owner": [msg]})
    return start, end, owners


def _day(value: Any, name: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        day = date.fromisoformat(str(value))
    except ValueError:
        msg = f"{name} must be a date YYYY-MM-DD / {name} 必须是 YYYY-MM-DD 格式的日期"
        raise ValidationFailed(msg, {name: [msg]}) from None
    # the bound is local midnight (or the next one) in UTC: a day off either end of the calendar
    if not date(1, 1, 2) <= day <= date(9999, 12, 30):
        msg = f"{name} must lie between 0001-01-02 and 9999-12-30 / {name} 须在 0001-01-02 至 9999-12-30 之间"
        raise ValidationFailed(msg, {name: [msg]})
    return day


def plain(value: Any, tz: tzinfo) -> Any:
    """A database value as JSON-friendly data: dates ISO, datetimes ISO in ``tz``, decimals float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, datetime):
        return aware(value).astimezone(tz).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def measure_value(value: Any, agg: str, integral: bool, tz: tzinfo) -> Any:
    """Report numbers: counts int, integral sums int, other numbers float (avg to 4 places)."""
    if value is None:
        return 0 if agg in ("count", "count_distinct") else None
    if agg in ("count", "count_distinct"):
        return int(value)
    if isinstance(value, Decimal | float | int) and not isinstance(value, bool):
        if agg == "avg":
            return round(float(value), 4)
        if integral and value == int(value):
            return int(value)
        return float(value)
    return plain(value, tz)


def quotient(a: Any, b: Any, scale: float = 1.0, places: int = 4) -> float | None:
    if a is None or b in (None, 0):
        return None
    return round(float(a) * scale / float(b), places)
