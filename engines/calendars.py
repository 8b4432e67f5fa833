"""Business-hours calendars: when is somebody at work, and how much working time lies between two moments.

Owns the ``calendars:`` spec of an app (key, timezone, weekdays, hours, public holidays of a country,
extra holidays and extra working days), its validation (``validate_spec``) and the arithmetic on
business time: ``is_working_time``, ``add`` (forward, or backward for a negative duration),
``between`` and ``holidays_between``. China uses ``chinese_calendar`` for public holidays *and*
adjusted working days (调休); years it does not cover, and every other country, use ``holidays``.

Does not own SLA clocks (``engines.sla``), timers or storage. Pure: no I/O, no module-level state;
the only cache is the holiday table a calendar instance holds for its own country.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar
import holidays as holidays_lib

from .errors import DefinitionError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
DEFAULT_HOURS = ("00:00-24:00",)
EXTRA_HOLIDAY_NAME = "公司假日 / Company holiday"
_RANGE_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_DAY_MINUTES = 24 * 60
# A calendar with no working minute in ten years is broken; stop instead of looping forever.
_MAX_IDLE_DAYS = 3660

Interval = tuple[datetime, datetime]


def _parse_range(text: Any) -> tuple[int, int] | str:
    """'09:00-12:00' -> (540, 720) minutes of the day, or an error message."""
    m = _RANGE_RE.match(text) if isinstance(text, str) else None
    if not m:
        return f"{text!r} is not a range like '09:00-12:00' / 时间段格式应为 09:00-12:00"
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if m1 > 59 or m2 > 59 or h1 > 23 or h2 > 24 or (h2 == 24 and m2 != 0):
        return f"{text!r} is not a valid time of day / 时间无效"
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end <= start:
        return f"{text!r} ends before it starts / 结束时间必须晚于开始时间"
    return start, end


def _parse_day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _parse_zone(name: Any) -> tzinfo | None:
    if not isinstance(name, str) or not name.strip():
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _split_country(code: str) -> tuple[str, str | None]:
    country, _, subdiv = code.strip().partition("-")
    return country.upper(), (subdiv or None)


def _country_error(code: Any) -> str | None:
    if not isinstance(code, str) or not code.strip():
        return f"holidays: {code!r} is not a country code / 节假日应为国家代码（如 CN）"
    country, subdiv = _split_country(code)
    supported = holidays_lib.list_supported_countries()
    if country not in supported:
        return f"holidays: unknown country {code!r} / 未知的国家代码 {code!r}"
    if subdiv is not None and subdiv not in supported[country]:
        return f"holidays: unknown subdivision {code!r} / 未知的地区代码 {code!r}"
    return None


def validate_spec(spec: Mapping[str, Any]) -> list[str]:
    """Every problem of one ``calendars:`` item, as bilingual messages (empty when it is valid)."""
    if not isinstance(spec, Mapping):
        return ["a calendar must be an object / 日历必须是对象"]
    errors: list[str] = []
    if not isinstance(spec.get("key"), str) or not spec.get("key"):
        errors.append("key is required / 缺少 key")
    if spec.get("timezone") is not None and _parse_zone(spec.get("timezone")) is None:
        errors.append(f"timezone: unknown time zone {spec.get('timezone')!r} / 未知时区")
    weekdays = spec.get("weekdays", DEFAULT_WEEKDAYS)
    if not isinstance(weekdays, list | tuple):
        errors.append("weekdays must be a list such as [mon, tue] / weekdays 必须是列表")
    else:
        for name in weekdays:
            if not isinstance(name, str) or name.lower() not in WEEKDAYS:
                errors.append(f"weekdays: unknown weekday {name!r} (mon..sun) / 未知的星期 {name!r}")
    hours = spec.get("hours", DEFAULT_HOURS)
    if not isinstance(hours, list | tuple) or not hours:
        errors.append("hours must be a non-empty list such as ['09:00-18:00'] / hours 必须是非空列表")
    else:
        ranges = []
        for i, text in enumerate(hours):
            parsed = _parse_range(text)
            if isinstance(parsed, str):
                errors.append(f"hours[{i}]: {parsed}")
            else:
                ranges.append((parsed, text))
        ranges.sort()
        for (prev, prev_text), (cur, cur_text) in zip(ranges, ranges[1:], strict=False):
            if cur[0] < prev[1]:
                errors.append(f"hours: {prev_text!r} and {cur_text!r} overlap / 时间段 {prev_text} 与 {cur_text} 重叠")
    if spec.get("holidays") not in (None, False, ""):
        problem = _country_error(spec.get("holidays"))
        if problem:
            errors.append(problem)
    days: dict[str, set[date]] = {}
    for name in ("extra_holidays", "extra_workdays"):
        raw = spec.get(name) or []
        days[name] = set()
        if not isinstance(raw, list | tuple):
            errors.append(f"{name} must be a list of dates / {name} 必须是日期列表")
            continue
        for i, value in enumerate(raw):
            day = _parse_day(value)
            if day is None:
                errors.append(f"{name}[{i}]: {value!r} is not a date YYYY-MM-DD / 不是有效日期")
            else:
                days[name].add(day)
    for day in sorted(days["extra_holidays"] & days["extra_workdays"]):
        errors.append(f"{day.isoformat()} is both an extra holiday and an extra workday / "
                      f"{day.isoformat()} 不能既是假日又是工作日")
    return errors


def _valid(parsed: Any) -> Any:
    """A value ``validate_spec`` has already accepted."""
    if parsed is None or isinstance(parsed, str):
        raise AssertionError(f"validated value expected, got {parsed!r}")
    return parsed


def _utc(dt: datetime) -> datetime:
    if not isinstance(dt, datetime) or dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"an aware datetime is required, got {dt!r}")
    return dt.astimezone(UTC)


class BusinessCalendar:
    """Working hours on working days in one time zone. Build with ``from_spec`` or ``always``."""

    def __init__(self, *, key: str | None, tz: tzinfo, weekdays: frozenset[int],
                 hours: tuple[tuple[int, int], ...], country: str | None = None,
                 extra_holidays: frozenset[date] = frozenset(),
                 extra_workdays: frozenset[date] = frozenset(), always: bool = False):
        self.key = key
        self.tz = tz
        self.weekdays = weekdays
        self.hours = hours
        self.country = country
        self.extra_holidays = extra_holidays
        self.extra_workdays = extra_workdays
        self._always = always
        self._table = None
        if country:
            code, subdiv = _split_country(country)
            self._table = holidays_lib.country_holidays(code, subdiv=subdiv)
        self._use_chinese_calendar = bool(country) and _split_country(country) == ("CN", None)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, default_timezone: str = "UTC") -> BusinessCalendar:
        """Build from a ``calendars:`` item; raises DefinitionError listing every problem."""
        errors = validate_spec(spec)
        tz = _parse_zone(spec.get("timezone") or default_timezone) if isinstance(spec, Mapping) else None
        if tz is None and not errors:
            errors.append(f"timezone: unknown time zone {default_timezone!r} / 未知时区")
        if errors:
            key = spec.get("key") if isinstance(spec, Mapping) else None
            location = f"calendars.{key}" if key else "calendars"
            raise DefinitionError("Invalid calendar / 日历定义无效",
                                  [{"location": location, "message": m} for m in errors])
        return cls(
            key=spec["key"], tz=tz,
            weekdays=frozenset(WEEKDAYS.index(w.lower()) for w in spec.get("weekdays", DEFAULT_WEEKDAYS)),
            hours=tuple(sorted(_valid(_parse_range(t)) for t in spec.get("hours", DEFAULT_HOURS))),
            country=spec.get("holidays") or None,
            extra_holidays=frozenset(_valid(_parse_day(d)) for d in spec.get("extra_holidays") or []),
            extra_workdays=frozenset(_valid(_parse_day(d)) for d in spec.get("extra_workdays") or []),
        )

    @classmethod
    def always(cls, tz: tzinfo | str = "UTC") -> BusinessCalendar:
        """24×7: every moment is working time (for SLAs without a calendar)."""
        zone = _parse_zone(tz) if isinstance(tz, str) else tz
        if zone is None:
            raise ValueError(f"unknown time zone {tz!r}")
        return cls(key=None, tz=zone, weekdays=frozenset(range(7)), hours=((0, _DAY_MINUTES),), always=True)

    def __repr__(self) -> str:
        if self._always:
            return f"BusinessCalendar.always({self.tz})"
        return f"BusinessCalendar(key={self.key!r}, tz={self.tz}, country={self.country!r})"

    # -- days ---------------------------------------------------------------------------------

    def _public_day(self, day: date) -> tuple[str | None, bool]:
        """(holiday or adjustment name, is an adjusted working day) from the country's table."""
        if self._table is None:
            return None, False
        if self._use_chinese_calendar:
            try:
                is_holiday, raw = chinese_calendar.get_holiday_detail(day)
            except NotImplementedError:
                pass  # a year chinese_calendar has no data for: the generic table below
            else:
                if raw is None:
                    return None, False
                return _cn_name(raw), not is_holiday
        name = self._table.get(day)
        adjusted = day in getattr(self._table, "weekend_workdays", ())
        return name, adjusted

    def day_status(self, day: date) -> tuple[bool, str | None]:
        """(is a working day, holiday name or None) for a local date."""
        if self._always or day in self.extra_workdays:
            return True, None
        if day in self.extra_holidays:
            return False, EXTRA_HOLIDAY_NAME
        name, adjusted = self._public_day(day)
        if adjusted:
            return True, None
        if name:
            return False, name
        return day.weekday() in self.weekdays, None

    def holiday_name(self, day: date) -> str | None:
        """The name of the holiday on ``day`` (public or extra), if it is one."""
        return self.day_status(day)[1]

    def is_working_day(self, day: date) -> bool:
        return self.day_status(day)[0]

    def _intervals(self, day: date) -> list[Interval]:
        """The working intervals of a local date, in UTC (DST-safe arithmetic)."""
        if not self.is_working_day(day):
            return []
        out = []
        for start, end in self.hours:
            a, b = self._moment(day, start), self._moment(day, end)
            if b > a:
                out.append((a, b))
        return out

    def _moment(self, day: date, minute: int) -> datetime:
        if minute >= _DAY_MINUTES:
            day, minute = day + timedelta(days=1), minute - _DAY_MINUTES
        local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.tz)
        return local.astimezone(UTC)

    def _days(self, first: date, step: int) -> Iterator[tuple[date, list[Interval]]]:
        """Days from ``first`` onwards (step +1) or backwards (step -1) with their intervals."""
        day, idle = first, 0
        while True:
            intervals = self._intervals(day)
            yield day, intervals
            idle = 0 if intervals else idle + 1
            if idle > _MAX_IDLE_DAYS:
                raise ValueError(f"calendar {self.key!r} has no working time for ten years")
            day += timedelta(days=step)

    def _local_date(self, moment_utc: datetime) -> date:
        return moment_utc.astimezone(self.tz).date()

    # -- business time ------------------------------------------------------------------------

    def is_working_time(self, dt: datetime) -> bool:
        moment = _utc(dt)
        if self._always:
            return True
        return any(a <= moment < b for a, b in self._intervals(self._local_date(moment)))

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The first moment at which ``duration`` of working time has passed since ``start``.

        A negative duration walks backwards: the last moment that lies that much working time
        before ``start``. Walks day by day over the working intervals, never minute by minute.
        """
        moment = _utc(start)
        if duration < timedelta(0):
            return self._subtract(moment, -duration)
        if self._always or duration == timedelta(0):
            return (moment + duration).astimezone(self.tz)
        remaining = duration
        for _day, intervals in self._days(self._local_date(moment), 1):
            for a, b in intervals:
                if b <= moment:
                    continue
                begin = max(a, moment)
                if remaining <= b - begin:
                    return (begin + remaining).astimezone(self.tz)
                remaining -= b - begin
        raise AssertionError("unreachable")  # pragma: no cover

    def _subtract(self, end: datetime, duration: timedelta) -> datetime:
        if self._always:
            return (end - duration).astimezone(self.tz)
        remaining = duration
        for _day, intervals in self._days(self._local_date(end), -1):
            for a, b in reversed(intervals):
                if a >= end:
                    continue
                finish = min(b, end)
                if remaining <= finish - a:
                    return (finish - remaining).astimezone(self.tz)
                remaining -= finish - a
        raise AssertionError("unreachable")  # pragma: no cover

    def between(self, a: datetime, b: datetime) -> timedelta:
        """Working time elapsed from ``a`` to ``b`` (negative when ``b`` is before ``a``)."""
        start, end = _utc(a), _utc(b)
        if end < start:
            return -self.between(b, a)
        if self._always:
            return end - start
        total = timedelta(0)
        day, last = self._local_date(start), self._local_date(end)
        while day <= last:
            for x, y in self._intervals(day):
                lo, hi = max(x, start), min(y, end)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total

    def holidays_between(self, a: datetime | date, b: datetime | date) -> list[date]:
        """Local dates from ``a`` to ``b`` (inclusive) that are usual working weekdays but are off."""
        first = self._local_date(_utc(a)) if isinstance(a, datetime) else a
        last = self._local_date(_utc(b)) if isinstance(b, datetime) else b
        out = []
        day = first
        while day <= last:
            if day.weekday() in self.weekdays and not self.is_working_day(day):
                out.append(day)
            day += timedelta(days=1)
        return out


def _cn_name(raw: str) -> str:
    try:
        holiday = chinese_calendar.Holiday(raw)
    except ValueError:
        return raw
    return f"{holiday.chinese} / {raw}"
