"""Run-time value semantics shared by the Python back end and the function library.

This module owns what a value *means*: blank (None, '' or []), null-safe arithmetic, mixing
Decimal with float (the float goes through ``str``), dates against date-times (a date is the
start of its day in the app's time zone), durations, bounded powers and text sizes. It holds no
state and knows nothing about syntax or SQL.
"""
from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .types import MAX_EXPONENT, MAX_NUMBER, MAX_TEXT, EvalError

ONE_DAY = timedelta(days=1)


def is_blank(x) -> bool:
    return x is None or (isinstance(x, (str, list)) and len(x) == 0)


def to_decimal(x) -> Decimal:
    return x if isinstance(x, Decimal) else Decimal(repr(x)) if isinstance(x, float) else Decimal(x)


def start_of_day(d: date, tz) -> datetime:
    return datetime.combine(d, time(), tzinfo=tz)


def as_date(x, tz) -> date:
    """A date, or a date-time taken as its date in the app's time zone."""
    if isinstance(x, datetime):
        return x.astimezone(tz).date()
    return x


def align(a, b, tz):
    """Bring two non-blank values of compatible types to one Python type before comparing."""
    if isinstance(a, Decimal) and isinstance(b, float):
        return a, to_decimal(b)
    if isinstance(a, float) and isinstance(b, Decimal):
        return to_decimal(a), b
    if isinstance(a, datetime):
        if isinstance(b, date) and not isinstance(b, datetime):
            return a, start_of_day(b, tz)
    elif isinstance(a, date) and isinstance(b, datetime):
        return start_of_day(a, tz), b
    return a, b


def equal(a, b, tz) -> bool:
    if a is None or b is None:
        return a is b
    if a.__class__ is not b.__class__:
        a, b = align(a, b, tz)
    return a == b


def ordered(op, a, b, tz) -> bool:
    """``op(a, b)`` for < <= > >=; anything blank is False."""
    if a is None or b is None:
        return False
    if a.__class__ is not b.__class__:
        a, b = align(a, b, tz)
    return op(a, b)


def member(x, container, tz) -> bool:
    """``x in container`` for a list (element equality) or a text (substring); blank is False."""
    if x is None or container is None:
        return False
    if isinstance(container, str):
        return isinstance(x, str) and x in container
    if isinstance(x, str):
        return x in container
    return any(equal(x, e, tz) for e in container)


# -- numbers --------------------------------------------------------------------------------------
def _numbers(a, b):
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return to_decimal(a), to_decimal(b)
    return a, b


def add(a, b, c=None):
    if a is None or b is None:
        return None
    try:
        return a + b
    except TypeError:
        a, b = _numbers(a, b)
        return a + b


def sub(a, b, c=None):
    if a is None or b is None:
        return None
    try:
        return a - b
    except TypeError:
        a, b = _numbers(a, b)
        return a - b


def mul(a, b, c=None):
    if a is None or b is None:
        return None
    try:
        return a * b
    except TypeError:
        a, b = _numbers(a, b)
        return a * b


def div(a, b, c=None):
    if a is None or b is None or not b:
        return None
    try:
        return a / b
    except TypeError:
        a, b = _numbers(a, b)
        return a / b
    except ZeroDivisionError:
        return None


def mod(a, b, c=None):
    """Python's floored modulo for every number type (Decimal's own % truncates)."""
    if a is None or b is None or not b:
        return None
    a, b = _numbers(a, b)
    r = a % b
    if isinstance(r, Decimal) and r and (r < 0) != (b < 0):
        r += b
    return r


def power(a, b, c=None):
    if a is None or b is None:
        return None
    if abs(b) > MAX_EXPONENT:
        raise EvalError(f"exponent {b} is too large (at most {MAX_EXPONENT}) / 指数过大")
    mag = abs(a)
    if mag and mag != 1 and b:
        try:
            size = math.log10(mag) * float(b)
        except (OverflowError, ValueError):
            size = math.inf
        if size > math.log10(MAX_NUMBER):
            raise EvalError("result of ** is too large (over 1e100) / 乘方结果过大（超过 1e100）")
    try:
        r = a ** b
    except TypeError:
        a, b = _numbers(a, b)
        return power(a, b)
    except (ZeroDivisionError, InvalidOperation):
        return None
    return None if isinstance(r, complex) else r


def neg(a):
    return None if a is None else -a


def round_half_up(x, places=0):
    if x is None or places is None:
        return None
    n = int(places)
    if not -15 <= n <= 15:
        raise EvalError("ROUND: places must be between -15 and 15 / ROUND 的小数位须在 -15 到 15 之间")
    if isinstance(x, int) and n >= 0:
        return x
    d = to_decimal(x)
    if not d.is_finite():
        return x
    try:
        q = d.quantize(Decimal(1).scaleb(-n), rounding=ROUND_HALF_UP)
    except InvalidOperation:        # more digits than the decimal context holds: nothing to round
        return x
    if isinstance(x, Decimal):
        return q
    if isinstance(x, int) or n <= 0:
        return int(q)
    return float(q)


# -- text -----------------------------------------------------------------------------------------
def check_text(s: str) -> str:
    if len(s) > MAX_TEXT:
        raise EvalError(f"text result is too long (over {MAX_TEXT} characters) / 文本结果过长")
    return s


def concat(a, b, c=None):
    """Text +: a blank side counts as ''."""
    return check_text((a or "") + (b or ""))


# -- dates and durations --------------------------------------------------------------------------
def whole_days(td: timedelta) -> int:
    return int(td / ONE_DAY)            # toward zero: DAYS(1.5) on a date adds one day


def date_plus_days(d, td, sign=1):
    if d is None or td is None:
        return None
    return d + timedelta(days=sign * whole_days(td))


def _absolute(dt: datetime, td: timedelta) -> datetime:
    # durations are elapsed time: add in UTC so that DST changes do not stretch them
    return (dt.astimezone(UTC) + td).astimezone(dt.tzinfo)


def datetime_plus(x, td, tz, sign=1):
    """date-time (or a date, taken at the start of its day) +/- a duration -> date-time."""
    if x is None or td is None:
        return None
    if not isinstance(x, datetime):
        x = start_of_day(x, tz)
    return _absolute(x, td if sign > 0 else -td)


def date_minus_date(a, b, tz):
    if a is None or b is None:
        return None
    return (as_date(a, tz) - as_date(b, tz)).days


def datetime_minus(a, b, tz):
    """Elapsed time between two date-times (dates taken at the start of their day)."""
    if a is None or b is None:
        return None
    if not isinstance(a, datetime):
        a = start_of_day(a, tz)
    if not isinstance(b, datetime):
        b = start_of_day(b, tz)
    return a.astimezone(UTC) - b.astimezone(UTC)


def duration_times(td, n):
    if td is None or n is None:
        return None
    if isinstance(td, (int, float, Decimal)):
        td, n = n, td
    return td * (float(n) if isinstance(n, Decimal) else n)


def duration_div(td, n):
    if td is None or n is None or not n:
        return None
    if isinstance(n, timedelta):
        return td / n
    return td / (float(n) if isinstance(n, Decimal) else n)


def parse_number(n):
    return float(n) if isinstance(n, Decimal) else n
