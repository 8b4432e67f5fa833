"""The expression language in Python: every function, null semantics, date arithmetic in
Asia/Shanghai, Decimal/float mixing, prev/changed, run-time limits, hostile input, the cache."""
from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from engines.expressions import (
    ANY,
    BOOL,
    DATE,
    DATETIME,
    DURATION,
    FUNCTIONS,
    LIST,
    NULL,
    NUMBER,
    TEXT,
    Compiled,
    EvalContext,
    EvalError,
    ExpressionCache,
    ExpressionError,
    FieldSig,
    compile_expression,
)

SH = ZoneInfo("Asia/Shanghai")
# 17:00 UTC on 31 Jan is 01:00 on 1 Feb in Shanghai: the UTC date and the local date differ.
NOW = datetime(2026, 1, 31, 17, 0, tzinfo=UTC)
CTX = EvalContext(now=NOW, tz=SH)

ENV = {
    "amount": FieldSig(NUMBER), "visits": FieldSig(NUMBER), "rate": FieldSig(NUMBER),
    "name": FieldSig(TEXT), "source": FieldSig(TEXT), "industry": FieldSig(TEXT),
    "status": FieldSig(TEXT, options=("open", "closed")),
    "active": FieldSig(BOOL), "due": FieldSig(DATE), "created_at": FieldSig(DATETIME),
    "tags": FieldSig(LIST, options=("vip", "new", "中文")), "wait": FieldSig(DURATION), "extra": FieldSig(ANY),
    "customer": FieldSig(NUMBER, target={"industry": FieldSig(TEXT), "owner": FieldSig(
        NUMBER, target={"region": FieldSig(TEXT)})}),
}


def ev(text, values=None, *, ctx=CTX, expect=None, allow_prev=False):
    return compile_expression(text, ENV, expect=expect, allow_prev=allow_prev).evaluate(values or {}, ctx)


@pytest.mark.parametrize("text, values, expected", [
    ("IF(active, 1, 2)", {"active": True}, 1),
    ("IF(active, 1, 2)", {}, 2),                                   # blank condition is false
    ("IF(amount > 0, amount / 0, 7)", {"amount": 1}, None),        # only the chosen branch runs
    ("AND(active, amount > 1)", {"active": True, "amount": 2}, True),
    ("AND(active, amount > 1, True)", {"active": True}, False),
    ("OR(active, amount > 1)", {"amount": 2}, True),
    ("OR(active, False, amount > 1)", {}, False),
    ("NOT(active)", {}, True),
    ("ISBLANK(name)", {"name": ""}, True),
    ("ISBLANK(tags)", {"tags": []}, True),
    ("ISBLANK(amount)", {"amount": 0}, False),
    ("LEN(name)", {"name": "积木 app"}, 6),
    ("LEN(tags)", {"tags": ["vip", "new"]}, 2),
    ("LEN(name)", {}, 0),
    ("CONTAINS(name, 'App')", {"name": "My App"}, True),
    ("CONTAINS(name, 'app')", {"name": "My App"}, False),           # case-sensitive
    ("CONTAINS(tags, 'vip')", {"tags": ["new", "vip"]}, True),
    ("CONTAINS(tags, 'vip')", {}, False),
    ("STARTSWITH(name, 'My')", {"name": "My App"}, True),
    ("STARTSWITH(name, 'my')", {"name": "My App"}, False),
    ("LOWER(name)", {"name": "ÀB"}, "àb"),
    ("UPPER(name)", {"name": "ab"}, "AB"),
    ("UPPER(name)", {}, None),
    ("ROUND(2.5)", {}, 3),                                          # half away from zero, not banker's
    ("ROUND(-2.5)", {}, -3),
    ("ROUND(2.675, 2)", {}, 2.68),
    ("ROUND(amount, 1)", {"amount": Decimal("1.25")}, Decimal("1.3")),
    ("ROUND(1234, -2)", {}, 1200),
    ("MIN(visits, 10)", {"visits": 12}, 10),
    ("MIN(visits, 10)", {}, 10),                                    # blanks ignored
    ("MAX(amount, visits, 3)", {"amount": Decimal("4.5"), "visits": 4}, Decimal("4.5")),
    ("MIN(name, 'b')", {"name": "a"}, "a"),
    ("ABS(amount)", {"amount": -3}, 3),
    ("ABS(wait)", {"wait": timedelta(hours=-2)}, timedelta(hours=2)),
    ("TODAY()", {}, date(2026, 2, 1)),                              # local date, not the UTC one
    ("NOW()", {}, NOW),
    ("DATE(2026, 1, 31)", {}, date(2026, 1, 31)),
    ("DATE('2026-01-31')", {}, date(2026, 1, 31)),
    ("DATE(name)", {"name": "not a date"}, None),
    ("DATE(amount, 2, 30)", {"amount": 2026}, None),                # no such day: blank
    ("DATE(created_at)", {"created_at": datetime(2026, 1, 31, 16, 0, tzinfo=UTC)}, date(2026, 2, 1)),
    ("DAYS(2)", {}, timedelta(days=2)),
    ("HOURS(1.5)", {}, timedelta(minutes=90)),
    ("DAYS_BETWEEN(due, TODAY())", {"due": date(2026, 1, 1)}, 31),
    ("DAYS_BETWEEN(created_at, due)", {"created_at": datetime(2026, 1, 31, 16, 0, tzinfo=UTC),
                                       "due": date(2026, 2, 3)}, 2),
    ("YEAR(due)", {"due": date(2025, 12, 31)}, 2025),
    ("YEAR(created_at)", {"created_at": datetime(2025, 12, 31, 16, 30, tzinfo=UTC)}, 2026),
    ("MONTH(created_at)", {"created_at": datetime(2026, 1, 31, 16, 30, tzinfo=UTC)}, 2),
    ("COALESCE(name, source, 'none')", {"source": "web"}, "web"),
    ("COALESCE(name, 'none')", {"name": ""}, ""),                   # only None is skipped, as in SQL
])
def test_functions(text, values, expected):
    result = ev(text, values)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize("text, values, expected", [
    ("amount + 1", {}, None),                     # arithmetic with blank is blank
    ("amount * visits", {"amount": 2}, None),
    ("-amount", {}, None),
    ("amount > 1", {}, False),                    # ordering with blank is false ...
    ("not (amount > 1)", {}, True),               # ... and its negation true
    ("amount <= 1", {}, False),
    ("amount == None", {}, True),                 # == compares blanks normally
    ("amount != None", {}, False),
    ("amount == visits", {}, True),
    ("amount != 1", {}, True),
    ("industry in ['a', None]", {}, False),       # in with blank left is false
    ("industry not in ['a']", {}, True),
    ("'a' in name", {}, False),
    ("active and True", {}, False),               # and/or/not/IF treat blank as false
    ("active or True", {}, True),
    ("not active", {}, True),
    ("1 if active else 2", {}, 2),
    ("'Call back ' + name", {}, "Call back "),    # text + treats blank as ''
    ("name + source", {}, ""),
    ("amount / 0", {"amount": 5}, None),          # division by zero is blank
    ("amount / visits", {"amount": Decimal("1"), "visits": 0}, None),
    ("amount % 0", {"amount": 5}, None),
    ("0 ** -1", {}, None),
    ("(-8) ** 0.5", {}, None),                    # no complex numbers: blank
    ("due + DAYS(1)", {}, None),
    ("created_at - NOW()", {}, None),
    ("changed(amount)", {}, False),
])
def test_null_semantics(text, values, expected):
    assert ev(text, values, allow_prev=True) == expected


@pytest.mark.parametrize("text, values, expected", [
    ("amount == 0.1", {"amount": Decimal("0.1")}, True),          # a float meets a Decimal through str
    ("amount < 0.1", {"amount": Decimal("0.1")}, False),
    ("amount + rate", {"amount": Decimal("0.1"), "rate": 0.2}, Decimal("0.3")),
    ("amount * 1.5", {"amount": Decimal("2")}, Decimal("3.0")),
    ("amount / 4", {"amount": Decimal("1")}, Decimal("0.25")),
    ("amount in [0.1, 2]", {"amount": Decimal("0.1")}, True),
    ("amount == rate", {"amount": Decimal("0.1"), "rate": 0.1}, True),
    ("MAX(amount, rate)", {"amount": Decimal("1"), "rate": 0.5}, Decimal("1")),
    ("-7 % 3", {}, 2),                                             # floored modulo for every number type
    ("amount % 3", {"amount": Decimal("-7")}, Decimal("2")),
    ("7 / 2", {}, 3.5),
    ("2 ** 10", {}, 1024),
    ("10 ** amount", {"amount": 100}, 10 ** 100),
])
def test_numbers(text, values, expected):
    assert ev(text, values) == expected


@pytest.mark.parametrize("text, values, expected", [
    # 16:30 UTC on 31 Jan is 00:30 on 1 Feb in Shanghai
    ("DATE(created_at) == TODAY()", {"created_at": datetime(2026, 1, 31, 16, 30, tzinfo=UTC)}, True),
    ("DATE(created_at) == TODAY()", {"created_at": datetime(2026, 1, 31, 15, 59, tzinfo=UTC)}, False),
    # a date compared with a date-time is the start of that day in Shanghai (16:00 UTC the day before)
    ("created_at >= TODAY()", {"created_at": datetime(2026, 1, 31, 16, 0, tzinfo=UTC)}, True),
    ("created_at >= TODAY()", {"created_at": datetime(2026, 1, 31, 15, 59, tzinfo=UTC)}, False),
    ("due < NOW()", {"due": date(2026, 2, 1)}, True),              # 00:00 local < 01:00 local
    ("due == NOW()", {"due": date(2026, 2, 1)}, False),
    ("due > NOW()", {"due": date(2026, 2, 1)}, False),
    ("due + DAYS(3)", {"due": date(2026, 1, 30)}, date(2026, 2, 2)),
    ("due - DAYS(1.9)", {"due": date(2026, 1, 30)}, date(2026, 1, 29)),      # whole days on a date
    ("DAYS(2) + due", {"due": date(2026, 1, 30)}, date(2026, 2, 1)),
    ("due + HOURS(2)", {"due": date(2026, 2, 1)}, datetime(2026, 1, 31, 18, 0, tzinfo=UTC)),
    ("due - due", {"due": date(2026, 2, 1)}, 0),
    ("TODAY() - due", {"due": date(2026, 1, 1)}, 31),
    ("NOW() + HOURS(2)", {}, datetime(2026, 1, 31, 19, 0, tzinfo=UTC)),
    ("created_at - NOW()", {"created_at": datetime(2026, 2, 1, 2, 0, tzinfo=SH)}, timedelta(hours=1)),
    ("NOW() - due", {"due": date(2026, 2, 1)}, timedelta(hours=1)),
    ("NOW() - created_at > HOURS(1)", {"created_at": datetime(2026, 1, 31, 15, 0, tzinfo=UTC)}, True),
    ("wait * 2", {"wait": timedelta(hours=1)}, timedelta(hours=2)),
    ("wait / 2", {"wait": timedelta(hours=1)}, timedelta(minutes=30)),
    ("wait / HOURS(1)", {"wait": timedelta(hours=3)}, 3.0),
    ("DAYS_BETWEEN(NOW(), created_at)", {"created_at": datetime(2026, 2, 2, 15, 0, tzinfo=UTC)}, 1),
])
def test_dates_in_shanghai(text, values, expected):
    result = ev(text, values)
    assert result == expected
    assert type(result) is type(expected)


def test_datetime_results_keep_their_moment_across_zones():
    result = ev("created_at + HOURS(24)", {"created_at": datetime(2026, 1, 31, 16, 0, tzinfo=SH)})
    assert result == datetime(2026, 2, 1, 16, 0, tzinfo=SH)


def test_scoring_expression():
    text = ("(20 if source == 'website' else 0) + (30 if industry in ['manufacturing', 'retail'] else 0)"
            " + MIN(visits, 10) * 3")
    c = compile_expression(text, ENV, expect=NUMBER)
    assert c.result_type == NUMBER
    assert c.names == frozenset({"source", "industry", "visits"})
    assert c.evaluate({"source": "website", "industry": "retail", "visits": 4}, CTX) == 62
    assert c.evaluate({"source": "ad", "industry": None, "visits": 40}, CTX) == 30


def test_lookup_paths():
    c = compile_expression("customer.industry == 'it' and customer.owner.region == 'east' or customer == 3",
                           ENV, expect=BOOL)
    assert c.names == frozenset({"customer.industry", "customer.owner.region", "customer"})
    assert c.evaluate({"customer.industry": "it", "customer.owner.region": "east"}, CTX) is True
    assert c.evaluate({"customer": 3}, CTX) is True
    assert c.evaluate({}, CTX) is False


def test_constants_and_lists():
    assert ev("true and not false") is True
    assert ev("null == None") is True
    assert ev("LEN([1, 2, None])") == 3
    assert ev("'b' in ['a', 'b']") is True
    assert ev("tags == ['vip']", {"tags": ["vip"]}) is True


def test_expect_bool_always_gives_true_or_false():
    assert compile_expression("active", ENV, expect=BOOL).evaluate({}, CTX) is False
    assert compile_expression("IF(active, active, False)", ENV, expect=BOOL).evaluate({"active": True}, CTX) is True
    assert compile_expression("extra", ENV, expect=BOOL).evaluate({"extra": "x"}, CTX) is True


def test_prev_and_changed():
    c = compile_expression("changed(status) and status == 'closed' and prev(status) == 'open'", ENV,
                           expect=BOOL, allow_prev=True)
    assert c.uses_prev and c.names == frozenset({"status"})
    update = EvalContext(now=NOW, tz=SH, prev={"status": "open"})
    assert c.evaluate({"status": "closed"}, update) is True
    assert c.evaluate({"status": "open"}, update) is False
    create = CTX  # prev is None on create: changed() means "has a value"
    assert compile_expression("changed(status)", ENV, allow_prev=True).evaluate({"status": "open"}, create) is True
    assert compile_expression("prev(status)", ENV, allow_prev=True).evaluate({"status": "open"}, create) is None
    same = EvalContext(now=NOW, tz=SH, prev={"amount": 0.5, "name": ""})
    assert ev("changed(amount)", {"amount": Decimal("0.5")}, ctx=same, allow_prev=True) is False
    assert ev("changed(name)", {}, ctx=same, allow_prev=True) is False    # '' -> blank is no change
    assert ev("changed(amount)", {"amount": 1}, ctx=same, allow_prev=True) is True


def test_functions_documented_and_read_only():
    from engines.expressions.functions import SPECS
    expected = {"IF", "AND", "OR", "NOT", "ISBLANK", "LEN", "CONTAINS", "STARTSWITH", "LOWER", "UPPER", "ROUND",
                "MIN", "MAX", "ABS", "TODAY", "NOW", "DATE", "DAYS", "HOURS", "DAYS_BETWEEN", "YEAR", "MONTH",
                "COALESCE", "prev", "changed"}
    assert set(FUNCTIONS) == expected == set(SPECS)
    for name, doc in FUNCTIONS.items():
        assert doc.startswith(name + "(") and "\n" not in doc
        assert any("\u4e00" <= ch <= "\u9fff" for ch in doc), name      # carries its 中文
    with pytest.raises(TypeError):
        FUNCTIONS["EVIL"] = "x"  # type: ignore[index]


def test_type_constants():
    assert (NUMBER, TEXT, BOOL, DATE, DATETIME, LIST, DURATION, ANY, NULL) == (
        "number", "text", "bool", "date", "datetime", "list", "duration", "any", "null")


# -- run-time limits: nothing but EvalError leaves evaluate() ------------------------------------
@pytest.mark.parametrize("text, values, fragment", [
    ("amount ** visits", {"amount": 10, "visits": 101}, "exponent"),
    ("amount ** 2", {"amount": 10 ** 60}, "too large"),
    ("amount ** 3", {"amount": 1e40}, "too large"),
    ("name + name", {"name": "x" * 60_000}, "too long"),
    ("UPPER(name)", {"name": "x" * 100_001}, "too long"),
    ("amount + 1", {"amount": "abc"}, "failed"),                   # caller passed the wrong type
    ("LEN(name)", {"name": 5}, "failed"),
    ("DAYS(amount)", {"amount": 1e15}, "failed"),                  # timedelta overflow
    ("due + DAYS(amount)", {"due": date(9999, 12, 31), "amount": 5}, "failed"),
    ("ROUND(amount, visits)", {"amount": 1.5, "visits": 99}, "places"),
])
def test_run_time_errors_are_eval_errors(text, values, fragment):
    c = compile_expression(text, ENV)
    with pytest.raises(EvalError) as info:
        c.evaluate(values, CTX)
    assert fragment in info.value.message
    assert info.value.code == "expression_error" and info.value.status == 422
    assert info.value.expression == text


@pytest.mark.parametrize("text", [
    "__import__('os')",                           # dunder name
    "().__class__.__bases__",                     # attribute walk to object internals
    "'a' * 10**9",                                # text repetition is a type error
    "9**9**9",                                    # folded at compile time, exponent too large
    "(" * 10_000 + "1" + ")" * 10_000,            # 10,000 nested parentheses
    "1 + " * 250_000 + "1",                       # a 1 MB expression
    "-" * 3000 + "1",                             # Python's parser itself recurses too deep
    "not " * 990 + "active",                      # deep but short
    "[" * 150 + "]" * 150,                        # deep lists
    "ABS(" * 41 + "1" + ")" * 41,                 # 41 nested calls
    "(lambda: 1)()",
    "[c for c in name]",
    "name.format",
    "\x00",
])
def test_hostile_inputs_are_refused_quickly(text):
    start = time.perf_counter()
    with pytest.raises(ExpressionError):
        compile_expression(text, ENV)
    assert time.perf_counter() - start < 1.0


def test_deep_but_allowed_nesting_and_long_flat_chains():
    assert ev("ABS(" * 39 + "-1" + ")" * 39) == 1
    assert ev("+".join(["1"] * 1900)) == 1900           # a flat chain is one level, compiled as a loop
    assert ev(" and ".join(["True"] * 400)) is True


# -- the cache --------------------------------------------------------------------------------------
def test_cache_returns_the_same_compiled_object():
    cache = ExpressionCache()
    a = cache.get("amount > 1", ENV, "lead@3", expect=BOOL)
    assert isinstance(a, Compiled)
    assert cache.get("amount > 1", ENV, "lead@3", expect=BOOL) is a
    assert cache.get("amount > 1", ENV, "lead@4", expect=BOOL) is not a          # new revision
    assert cache.get("amount > 1", ENV, "lead@3") is not a                       # different expect
    assert cache.get("amount > 1", ENV, "lead@3", expect=BOOL, allow_prev=True) is not a
    assert len(cache) == 4


def test_cache_is_bounded_and_does_not_keep_errors():
    cache = ExpressionCache(maxsize=2)
    first = cache.get("1", ENV, "k")
    cache.get("2", ENV, "k")
    cache.get("3", ENV, "k")
    assert len(cache) == 2
    assert cache.get("1", ENV, "k") is not first
    for _ in range(2):
        with pytest.raises(ExpressionError):
            cache.get("amout", ENV, "k")
    with pytest.raises(ExpressionError):
        cache.get(["not", "text"], ENV, "k")  # type: ignore[arg-type]
    cache.clear()
    assert len(cache) == 0


def test_compiled_is_reusable_and_describes_itself():
    c = compile_expression("amount * 2", ENV)
    assert [c.evaluate({"amount": i}, CTX) for i in range(3)] == [0, 2, 4]
    assert c.text == "amount * 2" and c.result_type == NUMBER and not c.uses_prev
    assert "amount * 2" in repr(c)
