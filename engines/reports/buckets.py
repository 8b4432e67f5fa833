"""Date buckets in the app's time zone, as SQL expressions for SQLite and PostgreSQL.

Owns the one hard part of grouping by time: a datetime is stored as naive UTC, but a bucket
(day, week, month, quarter, year) is the calendar period *in the app's time zone*, returned as the
ISO date of its first day. PostgreSQL converts with ``timezone()`` (exact for every zone, DST
included). SQLite has no zone database, so the UTC text is shifted by the zone's offset: a constant
for zones without transitions since 1970 (Asia/Shanghai since 1991), otherwise a CASE over the
zone's transitions computed here from ``zoneinfo``. Weeks start on Monday (ISO).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

FIRST_YEAR = 1970
YEARS_AHEAD = 10
# Offsets are sampled every two weeks, then each change is located to the second; zones have not
# changed their offset and changed it back within two weeks since 1970.
_SCAN_STEP = timedelta(days=14)
_SECOND = timedelta(seconds=1)


def _offset(tz: tzinfo, utc: datetime) -> int:
    off = utc.astimezone(tz).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


def offset_transitions(tz: tzinfo, until_year: int) -> list[tuple[datetime, int]]:
    """[(naive UTC start, offset seconds)] from 1970 on; the first entry starts at 1970-01-01."""
    t = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC)
    end = datetime(until_year + 1, 1, 1, tzinfo=UTC)
    current = _offset(tz, t)
    out = [(t.replace(tzinfo=None), current)]
    while t < end:
        nxt = t + _SCAN_STEP
        off = _offset(tz, nxt)
        if off != current:
            lo, hi = t, nxt            # offset(lo) == current, offset(hi) != current
            while hi - lo > _SECOND:
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if _offset(tz, mid) == current:
                    lo = mid
                else:
                    hi = mid
            current = _offset(tz, hi)
            out.append((hi.replace(tzinfo=None), current))
        t = nxt
    return out


Transitions = list[tuple[datetime, int]]


def _text(value: str) -> ColumnElement:
    # Rendered into the SQL text: SQLite applies the column's affinity to a bound parameter on
    # every row, which costs ~10% on a million-row GROUP BY. These are our own constants.
    return sa.literal(value, sa.String, literal_execute=True)


def _sqlite_shift(col: ColumnElement, transitions: Transitions) -> ColumnElement:
    """A SQLite date-function modifier ('+28800 seconds') that moves stored UTC text to local time."""
    if len({off for _, off in transitions}) == 1:
        return _text(f"{transitions[0][1]:+d} seconds")
    stored = sa.type_coerce(col, sa.String)   # compare the stored text, not through the column's type
    # Newest first: data is mostly recent, so the first WHEN usually decides.
    whens = [(stored >= _text(start.strftime("%Y-%m-%d %H:%M:%S")), _text(f"{off:+d} seconds"))
             for start, off in reversed(transitions[1:])]
    return sa.case(*whens, else_=_text(f"{transitions[0][1]:+d} seconds"))


def _pg_local(col: ColumnElement, tz: tzinfo, transitions: Callable[[], Transitions]) -> ColumnElement:
    key = getattr(tz, "key", None)
    if key:
        return sa.func.timezone(key, sa.func.timezone("UTC", col))
    transitions = transitions()
    if len(transitions) == 1:
        return col + sa.literal(timedelta(seconds=transitions[0][1]), sa.Interval)
    naive = sa.type_coerce(col, sa.DateTime)
    whens = [(naive >= sa.literal(start, sa.DateTime), sa.literal(timedelta(seconds=off), sa.Interval))
             for start, off in reversed(transitions[1:])]
    return col + sa.case(*whens, else_=sa.literal(timedelta(seconds=transitions[0][1]), sa.Interval))


def bucket_expr(col: ColumnElement, bucket: str, *, is_datetime: bool, dialect: str, tz: tzinfo,
                transitions: Callable[[], Transitions]) -> ColumnElement:
    """The first day of ``col``'s bucket, local to ``tz``; a date (PostgreSQL) or ISO text (SQLite).

    ``transitions`` answers ``offset_transitions`` of ``tz`` (the caller computes it once per query).
    """
    if dialect == "postgresql":
        local = _pg_local(col, tz, transitions) if is_datetime else sa.cast(col, sa.DateTime)
        if bucket == "day":
            return sa.cast(local, sa.Date)
        return sa.cast(sa.func.date_trunc(bucket, local), sa.Date)
    if dialect != "sqlite":
        raise NotImplementedError(f"date buckets are not implemented for {dialect}")
    mods: list = [_sqlite_shift(col, transitions())] if is_datetime else []
    if bucket == "day":
        return sa.func.date(col, *mods, type_=sa.String)
    if bucket == "week":
        return sa.func.date(col, *mods, "-6 days", "weekday 1", type_=sa.String)
    if bucket == "month":
        return sa.func.date(col, *mods, "start of month", type_=sa.String)
    if bucket == "year":
        return sa.func.date(col, *mods, "start of year", type_=sa.String)
    month = sa.cast(sa.func.strftime("%m", col, *mods), sa.Integer)
    back = sa.func.printf("-%d months", (month - 1) % 3)
    return sa.func.date(col, *mods, "start of month", back, type_=sa.String)


def next_bucket_start(start: datetime | str, bucket: str):
    """The first day of the bucket after the one starting at ``start`` (a date)."""
    from datetime import date

    d = date.fromisoformat(start) if isinstance(start, str) else start
    if bucket == "day":
        return d + timedelta(days=1)
    if bucket == "week":
        return d + timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}[bucket]
    idx = d.year * 12 + d.month - 1 + months
    return date(idx // 12, idx % 12 + 1, 1)
