"""Business-hours calendars: China's holidays and 调休, lunch breaks, arithmetic, validation."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from engines.calendars import BusinessCalendar, validate_spec
from engines.errors import DefinitionError

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
CN_SPEC = {
    "key": "cn_business_hours",
    "timezone": "Asia/Shanghai",
    "weekdays": ["mon", "tue", "wed", "thu", "fri"],
    "hours": ["09:00-12:00", "13:30-18:00"],
    "holidays": "CN",
    "extra_holidays": ["2026-12-31"],
    "extra_workdays": [],
}


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


@pytest.fixture
def cn() -> BusinessCalendar:
    return BusinessCalendar.from_spec(CN_SPEC)


def test_chinese_calendar_2026_national_day_is_what_we_assume():
    # The tests below rely on the published 2026 schedule as chinese_calendar carries it:
    # Oct 1-7 off, and the weekend days Sep 20 (Sun) and Oct 10 (Sat) worked instead.
    off = [date(2026, 10, d) for d in range(1, 8)]
    assert all(chinese_calendar.is_holiday(d) for d in off)
    window = [date(2026, 9, 14) + timedelta(days=i) for i in range(35)]
    adjusted = [d for d in window if d.weekday() >= 5 and chinese_calendar.is_workday(d)]
    assert adjusted == [date(2026, 9, 20), date(2026, 10, 10)]


@pytest.mark.parametrize("moment, working", [
    (sh(2026, 10, 1, 10), False),     # National Day, a Thursday
    (sh(2026, 10, 7, 10), False),     # last day of the Golden Week, a Wednesday
    (sh(2026, 10, 8, 10), True),      # back to work on Thursday
    (sh(2026, 10, 10, 10), True),     # Saturday worked instead (调休)
    (sh(2026, 9, 20, 10), True),      # Sunday worked instead (调休)
    (sh(2026, 10, 11, 10), False),    # an ordinary Sunday
    (sh(2026, 9, 25, 10), False),     # Mid-Autumn Festival, a Friday
    (sh(2026, 9, 30, 12, 30), False),  # lunch break
    (sh(2026, 9, 30, 13, 30), True),  # the afternoon starts on the minute
    (sh(2026, 9, 30, 18, 0), False),  # and ends before 18:00
    (sh(2026, 9, 30, 8, 59), False),  # before opening
    (sh(2026, 12, 31, 10), False),    # extra_holidays
    (datetime(2026, 9, 30, 2, 0, tzinfo=UTC), True),  # 10:00 in Shanghai: any aware input works
])
def test_is_working_time(cn, moment, working):
    assert cn.is_working_time(moment) is working


@pytest.mark.parametrize("start, hours, expected", [
    (sh(2026, 3, 6, 17), 2, sh(2026, 3, 9, 10)),       # Friday 17:00 + 2 h -> Monday 10:00
    (sh(2026, 3, 4, 11), 2, sh(2026, 3, 4, 14, 30)),   # lunch break skipped
    (sh(2026, 3, 4, 12, 30), 1, sh(2026, 3, 4, 14, 30)),  # starting in the lunch break
    (sh(2026, 3, 4, 7), 1, sh(2026, 3, 4, 10)),        # starting before opening
    (sh(2026, 3, 4, 20), 1, sh(2026, 3, 5, 10)),       # starting after closing
    (sh(2026, 3, 4, 9), 3, sh(2026, 3, 4, 12)),        # exactly the morning: due at 12:00, not 13:30
    (sh(2026, 9, 30, 17), 2, sh(2026, 10, 8, 10)),     # over the National Day holidays
    (sh(2026, 10, 9, 17), 2, sh(2026, 10, 10, 10)),    # into the Saturday worked instead
    (sh(2026, 9, 30, 17), 72, sh(2026, 10, 20, 14)),   # 72 business hours over the Golden Week
    (sh(2026, 12, 30, 17), 2, sh(2027, 1, 4, 10)),     # extra holiday Dec 31, then New Year 2027
    (sh(2026, 3, 4, 10), 0, sh(2026, 3, 4, 10)),       # nothing to add
])
def test_add(cn, start, hours, expected):
    due = cn.add(start, timedelta(hours=hours))
    assert due == expected
    assert due.tzinfo is SH


@pytest.mark.parametrize("end, hours, expected", [
    (sh(2026, 3, 9, 10), 1, sh(2026, 3, 9, 9)),        # within the morning
    (sh(2026, 3, 9, 9, 30), 1, sh(2026, 3, 6, 17, 30)),  # back over the weekend
    (sh(2026, 3, 4, 14), 1, sh(2026, 3, 4, 11, 30)),   # back over lunch
    (sh(2026, 10, 8, 10), 2, sh(2026, 9, 30, 17)),     # back over the Golden Week
])
def test_add_negative_walks_backwards(cn, end, hours, expected):
    assert cn.add(end, -timedelta(hours=hours)) == expected


@pytest.mark.parametrize("a, b, hours", [
    (sh(2026, 3, 6, 17), sh(2026, 3, 9, 10), 2),       # Friday evening to Monday morning
    (sh(2026, 3, 4, 0), sh(2026, 3, 5, 0), 7.5),       # one full working day
    (sh(2026, 3, 7, 0), sh(2026, 3, 9, 0), 0),         # a weekend
    (sh(2026, 10, 1, 0), sh(2026, 10, 8, 0), 0),       # the Golden Week
    (sh(2026, 10, 10, 0), sh(2026, 10, 11, 0), 7.5),   # the Saturday worked instead
    (sh(2026, 3, 9, 10), sh(2026, 3, 6, 17), -2),      # reversed: negative
])
def test_between(cn, a, b, hours):
    assert cn.between(a, b) == timedelta(hours=hours)


def test_add_and_between_agree_on_a_grid(cn):
    starts = [sh(2026, 9, 18, 8) + timedelta(minutes=97 * i) for i in range(60)]
    durations = [timedelta(minutes=m) for m in (1, 45, 180, 450, 451, 2000, 4321)]
    for start in starts:
        for duration in durations:
            due = cn.add(start, duration)
            assert cn.between(start, due) == duration
            assert cn.is_working_time(due - timedelta(seconds=1))


def test_adding_many_hours_walks_days_not_minutes(cn, monkeypatch):
    calls = []
    original = cn._intervals
    monkeypatch.setattr(cn, "_intervals", lambda day: calls.append(day) or original(day))
    cn.add(sh(2026, 9, 30, 17), timedelta(hours=72))
    assert len(calls) == len(set(calls)) <= 25


def test_holidays_between_lists_weekdays_off_with_names(cn):
    days = cn.holidays_between(sh(2026, 9, 28, 9), sh(2026, 10, 12, 9))
    assert days == [date(2026, 10, d) for d in (1, 2, 5, 6, 7)]  # Oct 3/4 are a weekend anyway
    assert "National Day" in cn.holiday_name(date(2026, 10, 1))
    assert "国庆" in cn.holiday_name(date(2026, 10, 1))
    assert cn.holidays_between(date(2026, 12, 31), date(2026, 12, 31)) == [date(2026, 12, 31)]
    assert cn.holiday_name(date(2026, 12, 31))


def test_years_beyond_chinese_calendar_fall_back_to_holidays_library(cn):
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_holiday(date(2030, 10, 1))
    assert not cn.is_working_time(sh(2030, 10, 1, 10))   # a Tuesday, National Day
    assert cn.is_working_time(sh(2030, 10, 8, 10))
    assert cn.holiday_name(date(2030, 10, 1)) == "National Day"


def test_extra_workdays_and_other_countries():
    spec = {"key": "de", "timezone": "Europe/Berlin", "hours": ["08:00-16:00"], "holidays": "DE",
            "extra_workdays": ["2026-03-07"]}
    de = BusinessCalendar.from_spec(spec)
    assert not de.is_working_time(datetime(2026, 12, 25, 10, tzinfo=BERLIN))   # Christmas
    assert de.is_working_time(datetime(2026, 3, 7, 10, tzinfo=BERLIN))         # a Saturday made working
    assert not de.is_working_time(datetime(2026, 3, 14, 10, tzinfo=BERLIN))


def test_daylight_saving_days_are_counted_in_real_time():
    spec = {"key": "all_day", "timezone": "Europe/Berlin", "weekdays": ["sat", "sun"], "hours": ["00:00-24:00"]}
    cal = BusinessCalendar.from_spec(spec)
    # clocks jump forward on 2026-03-29: that Sunday has 23 hours
    a, b = datetime(2026, 3, 28, 12, tzinfo=BERLIN), datetime(2026, 3, 29, 12, tzinfo=BERLIN)
    assert cal.between(a, b) == timedelta(hours=23)
    assert cal.add(a, timedelta(hours=23)) == b


def test_always_is_plain_time():
    cal = BusinessCalendar.always("Asia/Shanghai")
    start = datetime(2026, 10, 1, 0, tzinfo=UTC)
    assert cal.is_working_time(start)
    assert cal.add(start, timedelta(hours=72)) == start + timedelta(hours=72)
    assert cal.add(start, timedelta(hours=1)).tzinfo is SH
    assert cal.between(start, start + timedelta(days=3)) == timedelta(days=3)
    assert cal.holidays_between(start, start + timedelta(days=9)) == []


def test_naive_datetimes_are_refused(cn):
    with pytest.raises(ValueError, match="aware"):
        cn.add(datetime(2026, 3, 4, 10), timedelta(hours=1))


def test_default_timezone_applies_when_the_spec_has_none():
    cal = BusinessCalendar.from_spec({"key": "x", "hours": ["09:00-18:00"]}, default_timezone="Asia/Shanghai")
    assert cal.add(datetime(2026, 3, 4, 0, tzinfo=UTC), timedelta(hours=1)) == sh(2026, 3, 4, 10)


@pytest.mark.parametrize("change, expected", [
    ({"timezone": "Mars/Olympus"}, "unknown time zone"),            # bad timezone
    ({"weekdays": ["mon", "funday"]}, "unknown weekday"),           # unknown weekday
    ({"hours": ["09:00-12:00", "11:00-14:00"]}, "overlap"),         # overlapping ranges
    ({"hours": ["18:00-09:00"]}, "ends before it starts"),          # backwards range
    ({"hours": ["25:00-26:00"]}, "not a valid time"),               # no such hour
    ({"hours": ["9 to 5"]}, "not a range"),                         # not a range at all
    ({"hours": []}, "non-empty"),                                   # no working hours
    ({"holidays": "XX"}, "unknown country"),                        # unknown country
    ({"holidays": "DE-XX"}, "unknown subdivision"),                 # unknown subdivision
    ({"extra_holidays": ["2026-02-30"]}, "not a date"),             # impossible date
    ({"extra_workdays": ["2026-12-31"]}, "both an extra holiday"),  # contradicts extra_holidays
    ({"key": None}, "key is required"),                             # no key
])
def test_validate_spec_reports_each_problem(change, expected):
    errors = validate_spec({**CN_SPEC, **change})
    assert len(errors) == 1 and expected in errors[0], errors
    assert any("\u4e00" <= ch <= "\u9fff" for ch in errors[0])  # bilingual


def test_valid_specs_have_no_errors():
    assert validate_spec(CN_SPEC) == []
    assert validate_spec({"key": "min"}) == []
    assert validate_spec({**CN_SPEC, "hours": ["09:00-12:00", "12:00-24:00"], "holidays": "US-CA"}) == []


def test_from_spec_raises_a_definition_error_with_every_problem():
    with pytest.raises(DefinitionError) as info:
        BusinessCalendar.from_spec({**CN_SPEC, "timezone": "Nowhere/Else", "weekdays": ["xx"]})
    assert [d["location"] for d in info.value.details] == ["calendars.cn_business_hours"] * 2
