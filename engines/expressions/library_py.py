"""What each library function does in the Python back end.

``build_call`` turns a checked ``ir.Call`` whose arguments are already compiled (closures
``fn(values, ctx)``) into one closure. Conditions (IF, AND, OR) are lazy like the operators.
Blank arguments never raise: they give blank, False or 0 as each function's doc says.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from types import MappingProxyType

from . import values as V
from .functions import parse_date_text
from .ir import Call

Fn = Callable[..., object]


def _if(node, a):
    t, x, y = a
    return lambda v, c: x(v, c) if t(v, c) else y(v, c)


def _and(node, a):
    if len(a) == 2:
        f, g = a
        return lambda v, c: True if (f(v, c) and g(v, c)) else False

    def fn(v, c):
        for f in a:
            if not f(v, c):
                return False
        return True
    return fn


def _or(node, a):
    if len(a) == 2:
        f, g = a
        return lambda v, c: True if (f(v, c) or g(v, c)) else False

    def fn(v, c):
        for f in a:
            if f(v, c):
                return True
        return False
    return fn


def _not(node, a):
    f = a[0]
    return lambda v, c: not f(v, c)


def _isblank(node, a):
    f = a[0]
    return lambda v, c: V.is_blank(f(v, c))


def _len(node, a):
    f = a[0]

    def fn(v, c):
        x = f(v, c)
        return 0 if x is None else len(x)
    return fn


def _contains(node, a):
    h, n = a
    return lambda v, c: V.member(n(v, c), h(v, c), c.tz)


def _startswith(node, a):
    t, p = a

    def fn(v, c):
        s, prefix = t(v, c), p(v, c)
        return s is not None and prefix is not None and s.startswith(prefix)
    return fn


def _text_fn(method):
    def build(node, a):
        f = a[0]

        def fn(v, c):
            x = f(v, c)
            return None if x is None else method(x)
        return fn
    return build


def _round(node, a):
    f = a[0]
    if len(a) == 1:
        return lambda v, c: V.round_half_up(f(v, c))
    g = a[1]
    return lambda v, c: V.round_half_up(f(v, c), g(v, c))


def _extreme(pick):
    def build(node, a):
        if len(a) == 2:
            f, g = a

            def fn2(v, c):
                x, y = f(v, c), g(v, c)
                if x is None:
                    return y
                if y is None:
                    return x
                return pick(x, y)
            return fn2

        def fn(v, c):
            best = None
            for f in a:
                x = f(v, c)
                if x is not None:
                    best = x if best is None else pick(best, x)
            return best
        return fn
    return build


def _abs(node, a):
    f = a[0]

    def fn(v, c):
        x = f(v, c)
        return None if x is None else abs(x)
    return fn


def _today(node, a):
    return lambda v, c: c.now.astimezone(c.tz).date()


def _now(node, a):
    return lambda v, c: c.now


def _int_part(x):
    if x is None:
        return None
    i = int(x)
    return i if i == x else None


def _date(node, a):
    if len(a) == 3:
        fy, fm, fd = a

        def fn3(v, c):
            parts = [_int_part(f(v, c)) for f in (fy, fm, fd)]
            if None in parts:
                return None
            try:
                return date(*parts)
            except (ValueError, OverflowError):
                return None
        return fn3
    f = a[0]

    def fn1(v, c):
        x = f(v, c)
        if x is None:
            return None
        if isinstance(x, str):
            return parse_date_text(x)
        return V.as_date(x, c.tz)
    return fn1


def _duration(unit):
    def build(node, a):
        f = a[0]

        def fn(v, c):
            n = f(v, c)
            return None if n is None else timedelta(**{unit: V.parse_number(n)})
        return fn
    return build


def _days_between(node, a):
    f, g = a
    return lambda v, c: V.date_minus_date(g(v, c), f(v, c), c.tz)


def _date_part(attr):
    def build(node, a):
        f = a[0]

        def fn(v, c):
            x = f(v, c)
            return None if x is None else getattr(V.as_date(x, c.tz), attr)
        return fn
    return build


def _coalesce(node, a):
    def fn(v, c):
        for f in a:
            x = f(v, c)
            if x is not None:
                return x
        return None
    return fn


def _prev(node, a):
    path = node.args[0].path

    def fn(v, c):
        p = c.prev
        return None if p is None else p.get(path)
    return fn


def _changed(node, a):
    path = node.args[0].path

    def fn(v, c):
        now = v.get(path)
        p = c.prev
        if p is None:
            return not V.is_blank(now)
        before = p.get(path)
        if V.is_blank(now) and V.is_blank(before):
            return False
        return not V.equal(now, before, c.tz)
    return fn


def _min_pick(x, y):
    return y if y < x else x


def _max_pick(x, y):
    return y if y > x else x


BUILDERS: MappingProxyType[str, Callable[[Call, list[Fn]], Fn]] = MappingProxyType({
    "IF": _if, "AND": _and, "OR": _or, "NOT": _not, "ISBLANK": _isblank, "LEN": _len,
    "CONTAINS": _contains, "STARTSWITH": _startswith, "LOWER": _text_fn(str.lower),
    "UPPER": _text_fn(str.upper), "ROUND": _round, "MIN": _extreme(_min_pick), "MAX": _extreme(_max_pick),
    "ABS": _abs, "TODAY": _today, "NOW": _now, "DATE": _date, "DAYS": _duration("days"),
    "HOURS": _duration("hours"), "DAYS_BETWEEN": _days_between, "YEAR": _date_part("year"),
    "MONTH": _date_part("month"), "COALESCE": _coalesce, "prev": _prev, "changed": _changed,
})


def build_call(node: Call, args: list[Fn]) -> Fn:
    return BUILDERS[node.name](node, args)

