"""Random expressions, well-formed or not, over a small environment: compiling, evaluating and
translating to SQL raise nothing but ExpressionError / EvalError, and never hang."""
from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from engines.expressions import (
    ANY,
    BOOL,
    DATE,
    DURATION,
    NUMBER,
    TEXT,
    EvalContext,
    EvalError,
    ExpressionError,
    FieldSig,
    compile_expression,
)
from engines.expressions.functions import FUNCTIONS
from tests.engines.test_expressions_sql import ENV as FILTER_ENV
from tests.engines.test_expressions_sql import conditions, numbers

ENV = {**FILTER_ENV, "w": FieldSig(DURATION), "any": FieldSig(ANY)}
MD = sa.MetaData()
T = sa.Table("t", MD, sa.Column("id", sa.Integer), sa.Column("n", sa.Integer), sa.Column("f", sa.Float),
             sa.Column("amount", sa.Numeric(10, 2)), sa.Column("s", sa.String), sa.Column("st", sa.String),
             sa.Column("b", sa.Boolean), sa.Column("d", sa.Date), sa.Column("dt", sa.DateTime),
             sa.Column("tags", sa.Text), sa.Column("w", sa.Interval), sa.Column("any", sa.String),
             sa.Column("customer", sa.Integer), sa.Column("customer_industry", sa.String))
DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": postgresql.psycopg.dialect()}
CTXS = [
    EvalContext(now=datetime(2026, 1, 31, 17, 0, tzinfo=UTC), tz=ZoneInfo("Asia/Shanghai")),
    EvalContext(now=datetime(2026, 3, 29, 1, 30, tzinfo=UTC), tz=ZoneInfo("Europe/Berlin"), prev={"n": 1, "s": "a"}),
]
ROWS = [
    {},
    {"n": 3, "f": 0.5, "amount": Decimal("2.50"), "s": "abc", "st": "open", "b": True, "d": date(2026, 1, 31),
     "dt": datetime(2026, 1, 31, 16, 0, tzinfo=UTC), "tags": ["a", "b"], "w": timedelta(hours=3), "any": 5,
     "customer": 1, "customer.industry": "中文"},
    {"n": -(10 ** 12), "f": -1e300, "amount": Decimal("-0.01"), "s": "", "b": False, "d": date(9999, 12, 31),
     "dt": datetime(1, 1, 2, tzinfo=UTC), "tags": [], "w": timedelta(days=-999_999), "any": "text"},
    # data that does not match the declared types (a buggy caller): still only EvalError
    {"n": "7", "f": Decimal("1.5"), "amount": 1.5, "s": 5, "b": "yes", "d": "2026-01-01", "dt": date(2026, 1, 1),
     "tags": "a,b", "w": 3, "any": [1, 2], "customer.industry": 7},
]

NAMES = st.one_of(
    st.sampled_from(list(ENV)),
    st.sampled_from(["customer.industry", "customer.nope", "n.x", "nope", "_p", "__class__", "true", "null",
                     "None", *FUNCTIONS, "len", "eval", "open"]),
)
LITERALS = st.one_of(
    st.integers(-10 ** 17, 10 ** 17).map(str), st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["'a'", "''", "'中文'", "\"b\"", "True", "False", "None", "[]", "[1, 'a']", "['a', 'b']",
                     "1e308", "0.1", "100", "101", "-1"]),
)
BINARY = st.sampled_from(["+", "-", "*", "/", "%", "**", "//", "==", "!=", "<", "<=", ">", ">=", "in", "not in",
                          "and", "or", "&", "is"])


def _expressions():
    leaves = st.one_of(NAMES, LITERALS)

    def extend(inner):
        return st.one_of(
            st.tuples(inner, BINARY, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(st.sampled_from(["-", "not ", "+", "~"]), inner).map(lambda t: t[0] + t[1]),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
            st.tuples(NAMES, st.lists(inner, max_size=4)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
            st.lists(inner, max_size=3).map(lambda items: f"[{', '.join(items)}]"),
            st.tuples(inner, st.sampled_from([".name", ".x", "[0]", ".__class__", "()"])).map("".join),
        )

    return st.recursive(leaves, extend, max_leaves=12)


EXPRESSIONS = st.one_of(
    _expressions(),
    conditions,                       # well-typed filters: these reach evaluation and SQL
    numbers,
    st.text(alphabet="nsbdft()[]'\",.+-*/%<>=! 0129aeifnorTNF_\n\\", max_size=60),   # mostly syntax errors
)


def _resolve(path: str):
    return T.c[path.replace(".", "_")] if path.replace(".", "_") in T.c else T.c.n


@settings(max_examples=200, deadline=None)
@given(text=EXPRESSIONS, expect=st.sampled_from([None, BOOL, NUMBER, TEXT, DATE, ANY]), allow_prev=st.booleans())
def test_random_expressions_raise_only_our_errors(text, expect, allow_prev):
    start = time.perf_counter()
    try:
        compiled = compile_expression(text, ENV, expect=expect, allow_prev=allow_prev)
    except ExpressionError as exc:
        assert exc.position is None or 0 <= exc.position <= len(text)
        return
    for ctx in CTXS:
        for row in ROWS:
            try:
                compiled.evaluate(row, ctx)
            except EvalError:
                pass
        for name, dialect in DIALECTS.items():
            try:
                clause = compiled.to_sql(_resolve, ctx, name)
            except ExpressionError:
                continue
            str(clause.compile(dialect=dialect))
    assert time.perf_counter() - start < 2.0, text
