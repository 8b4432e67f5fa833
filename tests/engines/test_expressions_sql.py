"""The SQL back end of the expression language, on SQLite and PostgreSQL: a filter selects
exactly the rows that Python evaluation accepts (a fixed table of filters and random ones from
Hypothesis), plain comparisons stay indexable, and what SQL cannot do is refused clearly."""
from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeDecorator

from engines.expressions import (
    BOOL,
    DATE,
    DATETIME,
    LIST,
    NUMBER,
    TEXT,
    EvalContext,
    ExpressionError,
    FieldSig,
    compile_expression,
)

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 1, 31, 17, 0, tzinfo=UTC)         # 01:00 on 1 Feb in Shanghai
CTX = EvalContext(now=NOW, tz=SH)
TODAY = date(2026, 2, 1)


class UTCStamp(TypeDecorator):
    """Aware datetimes in, naive UTC stored."""
    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


class Money(TypeDecorator):
    """NUMERIC; on SQLite bound as text so that SQLAlchemy does not warn about Decimal."""
    impl = sa.Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(sa.Numeric(12, 2, asdecimal=dialect.name != "sqlite"))

    def process_bind_param(self, value, dialect):
        if value is None or dialect.name != "sqlite":
            return value
        return str(value)


class JSONText(TypeDecorator):
    """A list stored as JSON text (a multi-select)."""
    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else json.dumps(value, ensure_ascii=False)


OPTIONS = ("open", "closed", "new")
ENV = {
    "id": FieldSig(NUMBER), "n": FieldSig(NUMBER), "f": FieldSig(NUMBER), "amount": FieldSig(NUMBER),
    "s": FieldSig(TEXT), "st": FieldSig(TEXT, options=OPTIONS), "b": FieldSig(BOOL), "d": FieldSig(DATE),
    "dt": FieldSig(DATETIME), "tags": FieldSig(LIST),
    "customer": FieldSig(NUMBER, target={"industry": FieldSig(TEXT)}),
}
CUSTOMERS = {1: "it", 2: "retail", 3: None}


def make_rows() -> list[dict]:
    rnd = random.Random(20260131)
    around_midnight = datetime(2026, 1, 31, 16, 0, tzinfo=UTC)         # 00:00 on 1 Feb in Shanghai
    rows = []
    for i in range(1, 31):
        rows.append({
            "id": i,
            "n": rnd.choice([None, -5, -1, 0, 1, 2, 3, 5, 10, 20]),
            "f": rnd.choice([None, 0.0, 0.5, 2.5, -1.5, 10.25]),
            "amount": rnd.choice([None, Decimal("0"), Decimal("0.25"), Decimal("1.50"), Decimal("-3"),
                                  Decimal("12.50"), Decimal("100.75")]),
            "s": rnd.choice([None, "", "a", "A", "ab", "Ab", "abc", "a%b", "b_c", "中文", "x%", "open", "B"]),
            "st": rnd.choice([None, *OPTIONS]),
            "b": rnd.choice([None, True, False]),
            "d": rnd.choice([None] + [TODAY + timedelta(days=k) for k in (-40, -2, -1, 0, 1, 3, 400)]),
            "dt": rnd.choice([None] + [around_midnight + timedelta(minutes=m)
                                       for m in (-1441, -61, -1, 0, 1, 59, 60, 61, 1440)]),
            "tags": rnd.choice([None, [], ["vip"], ["new", "vip"], ["中文"], ['a"b', "x"], ["VIP"]]),
            "customer": rnd.choice([None, 1, 2, 3]),
        })
    return rows


ROWS = make_rows()


def python_values(row: dict) -> dict:
    return {**row, "customer.industry": CUSTOMERS.get(row["customer"])}


@pytest.fixture
def db(engine):
    md = sa.MetaData()
    customers = sa.Table("x_customers", md, sa.Column("id", sa.Integer, primary_key=True),
                         sa.Column("industry", sa.String(20)))
    table = sa.Table(
        "x_rows", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("n", sa.Integer),
        sa.Column("f", sa.Float), sa.Column("amount", Money()), sa.Column("s", sa.String(40)),
        sa.Column("st", sa.String(20)), sa.Column("b", sa.Boolean), sa.Column("d", sa.Date),
        sa.Column("dt", UTCStamp()), sa.Column("tags", JSONText()), sa.Column("customer", sa.Integer))
    with engine.begin() as conn:
        md.create_all(conn)
        conn.execute(customers.insert(), [{"id": k, "industry": v} for k, v in CUSTOMERS.items()])
        conn.execute(table.insert(), ROWS)

    def resolve(path: str):
        if path == "customer.industry":
            return (sa.select(customers.c.industry).where(customers.c.id == table.c.customer)
                    .scalar_subquery())
        return table.c[path]

    def select_ids(text: str) -> tuple[list[int], list[int]]:
        compiled = compile_expression(text, ENV, expect=BOOL)
        in_python = sorted(r["id"] for r in ROWS if compiled.evaluate(python_values(r), CTX))
        clause = compiled.to_sql(resolve, CTX, engine.dialect.name)
        with engine.connect() as conn:
            in_sql = sorted(conn.execute(sa.select(table.c.id).where(clause)).scalars())
        return in_python, in_sql

    return select_ids


FILTERS = [
    # plain comparisons with blanks in the data
    "n > 0", "n != 5", "not (n > 0)", "n == None", "n != None", "-n >= 1", "f > n", "f == n",
    # Decimal column against float literals
    "amount > 0.25", "amount == 1.5", "amount <= -3", "amount + f > 12",
    # text: case-sensitive, code-point order, wildcards are data
    "s == 'a'", "s != 'a'", "s > 'B'", "s <= 'ab'", "LOWER(s) == 'ab'", "UPPER(s) < 'B'",
    "CONTAINS(s, '%')", "CONTAINS(s, 'b')", "CONTAINS(s, '')", "STARTSWITH(s, 'a')", "STARTSWITH(s, 'x%')",
    "STARTSWITH(s, st)", "'b' in s", "s in 'abc'", "s + '!' == 'a!'", "ISBLANK(s)", "LEN(s) >= 2",
    "COALESCE(s, 'zz') > 'b'", "MIN(s, 'b') == 'b'",
    # selects and lists
    "st in ['open', 'new']", "st not in ['open']", "st in []", "st not in []", "n in [1, 2, None]",
    "n not in [1, None]", "f in [0.5, 2.5]",
    # booleans
    "b", "not b", "b == True", "b == False", "b != True", "ISBLANK(b)", "(n > 0) == b", "(n > 0) == False",
    # multi-select stored as JSON text
    "'vip' in tags", "'VIP' in tags", "'中文' in tags", "CONTAINS(tags, 'new')", "'vip' not in tags",
    "'a\"b' in tags", "'b' in tags", "ISBLANK(tags)", "LEN(tags) > 1",
    # dates and date-times in Asia/Shanghai around midnight UTC
    "d < TODAY()", "d >= TODAY()", "d == TODAY()", "d < NOW()", "d <= NOW()", "d > NOW()", "d != NOW()",
    "dt < TODAY()", "dt >= TODAY()", "dt > NOW() - HOURS(1)", "dt + HOURS(1) > NOW()", "dt - DAYS(1) < TODAY()",
    "d + DAYS(1) == TODAY()", "d - DAYS(2) < DATE(2026, 1, 1)", "DATE(dt) == TODAY()", "DATE(dt) == d",
    "DAYS_BETWEEN(dt, TODAY()) == 0", "DAYS_BETWEEN(d, dt) > 0", "d - DATE(2026, 1, 1) > 29",
    "YEAR(d) == 2026", "MONTH(dt) == 2", "TODAY() - d > 1", "ISBLANK(dt)",
    # arithmetic and functions
    "n / 2 > 1", "n / 0 == None", "n % 3 == 1", "n % -3 == -1", "n * 2 + f > 3", "ABS(n) == 5",
    "MIN(n, f) < 1", "MAX(n, f, amount) > 2", "ROUND(f) == 3", "ROUND(amount, 1) == 0.3", "COALESCE(n, 7) == 7",
    "IF(b, n, 0) > 1", "(n if b else f) > 0", "IF(b, n > 0, f > 0)", "AND(b, n > 0)", "OR(b, n > 0, ISBLANK(s))",
    "NOT(n > 0)", "(n > 0) != (f > 0)",
    # through a lookup (a scalar subquery from the caller's resolver)
    "customer.industry == 'it'", "customer.industry != 'it'", "ISBLANK(customer.industry)",
    # constants only
    "True", "False", "1 > 2", "TODAY() > DATE(2026, 1, 1)",
]


def test_filters_select_the_same_rows_as_python(db):
    mismatches = {}
    for text in FILTERS:
        in_python, in_sql = db(text)
        if in_python != in_sql:
            mismatches[text] = (in_python, in_sql)
    assert mismatches == {}


# -- random filters ---------------------------------------------------------------------------------
def _join(fmt):
    return lambda parts: fmt.format(*((parts,) if isinstance(parts, str) else parts))


INTS = st.sampled_from(["0", "1", "2", "-3", "5", "10"])
FLOATS = st.sampled_from(["0.5", "2.5", "-1.5", "0.25"])
TEXTS = st.sampled_from(["''", "'a'", "'A'", "'ab'", "'open'", "'x%'", "'中文'", "'b_c'", "'B'"])
OPTION_TEXTS = st.sampled_from(["'open'", "'closed'", "'new'"])
CMP = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
conditions = st.deferred(lambda: _conditions)

# Divisions give inexact binary fractions: they are only compared, never mixed into Decimal arithmetic.
ratio = st.tuples(st.sampled_from(["n", "f", "2", "-3", "0.5"]), st.sampled_from(["n", "f", "2", "0", "4"])) \
    .map(_join("({} / {})"))
numbers = st.recursive(
    st.one_of(st.sampled_from(["n", "f", "amount", "LEN(s)", "YEAR(d)", "MONTH(dt)", "DAYS_BETWEEN(d, TODAY())",
                               "DAYS_BETWEEN(dt, TODAY())", "(d - DATE(2026, 1, 1))", "LEN(tags)", "ROUND(f)",
                               "COALESCE(n, 4)", "(n % 3)", "(n % -2)"]), INTS, FLOATS),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*"]), inner).map(_join("({} {} {})")),
        inner.map(_join("-{}")),
        inner.map(_join("ABS({})")),
        st.tuples(inner, inner).map(_join("MIN({}, {})")),
        st.tuples(inner, inner, inner).map(_join("MAX({}, {}, {})")),
        st.tuples(conditions, inner, inner).map(_join("IF({}, {}, {})")),
        st.tuples(inner, conditions, inner).map(_join("({} if {} else {})")),
    ), max_leaves=6)
texts = st.one_of(st.sampled_from(["s", "LOWER(s)", "UPPER(s)", "COALESCE(s, 'z')", "(s + 'x')",
                                   "customer.industry"]), TEXTS)
dates = st.sampled_from(["d", "TODAY()", "DATE(2026, 1, 31)", "(d + DAYS(1))", "DATE(dt)"])
moments = st.sampled_from(["dt", "NOW()", "(NOW() - HOURS(1))", "(dt + HOURS(2))", "(dt - DAYS(1))"])
moment_bounds = st.sampled_from(["NOW()", "(NOW() - HOURS(1))", "TODAY()", "DATE(2026, 1, 31)"])
date_bounds = st.sampled_from(["TODAY()", "NOW()", "DATE(2026, 2, 2)", "(TODAY() - DAYS(2))"])

_conditions = st.recursive(
    st.one_of(
        st.tuples(numbers, CMP, numbers).map(_join("{} {} {}")),
        st.tuples(ratio, CMP, st.one_of(ratio, INTS, FLOATS)).map(_join("{} {} {}")),
        st.tuples(texts, CMP, texts).map(_join("{} {} {}")),
        st.tuples(st.sampled_from(["st", "s"]), st.sampled_from(["in", "not in"]),
                  st.lists(OPTION_TEXTS, max_size=3)).map(lambda t: f"{t[0]} {t[1]} [{', '.join(t[2])}]"),
        st.tuples(st.sampled_from(["n", "f", "amount"]), st.sampled_from(["in", "not in"]),
                  st.lists(st.one_of(INTS, FLOATS), max_size=3)).map(lambda t: f"{t[0]} {t[1]} [{', '.join(t[2])}]"),
        st.tuples(st.sampled_from(["'vip'", "'new'", "'中文'", "'VIP'", "'a\"b'"]),
                  st.sampled_from(["in", "not in"])).map(_join("{} {} tags")),
        st.tuples(texts, TEXTS).map(_join("CONTAINS({}, {})")),
        st.tuples(texts, st.one_of(TEXTS, st.just("st"))).map(_join("STARTSWITH({}, {})")),
        st.tuples(TEXTS, texts).map(_join("{} in {}")),
        st.tuples(dates, CMP, date_bounds).map(_join("{} {} {}")),
        st.tuples(moments, CMP, moment_bounds).map(_join("{} {} {}")),
        st.sampled_from(["b", "b == True", "b != False", "ISBLANK(b)", "ISBLANK(s)", "ISBLANK(tags)", "ISBLANK(n)",
                         "n == None", "amount != None", "DATE(dt) == d", "True", "False"]),
    ),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(_join("({} and {})")),
        st.tuples(inner, inner).map(_join("({} or {})")),
        inner.map(_join("not ({})")),
        st.tuples(inner, st.sampled_from(["==", "!="]), inner).map(_join("({}) {} ({})")),
        st.tuples(inner, inner, inner).map(_join("IF({}, {}, {})")),
        st.tuples(inner, inner).map(_join("AND({}, {})")),
        st.tuples(inner, inner).map(_join("OR({}, {})")),
        inner.map(_join("NOT({})")),
    ), max_leaves=5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=conditions)
def test_random_filters_select_the_same_rows_as_python(db, text):
    try:
        in_python, in_sql = db(text)
    except ExpressionError as exc:       # the grammar only builds well-typed filters SQL can run
        pytest.fail(f"{text!r} was refused: {exc}")
    assert in_python == in_sql, text


# -- what the SQL looks like ------------------------------------------------------------------------
MD = sa.MetaData()
T = sa.Table("t", MD, sa.Column("n", sa.Integer, index=True), sa.Column("f", sa.Float), sa.Column("amount", Money()),
             sa.Column("s", sa.String(40)), sa.Column("st", sa.String(20)), sa.Column("b", sa.Boolean),
             sa.Column("d", sa.Date), sa.Column("dt", UTCStamp()), sa.Column("tags", JSONText()),
             sa.Column("customer", sa.Integer), sa.Column("id", sa.Integer))
DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": postgresql.psycopg.dialect()}


def render(text: str, dialect: str) -> str:
    clause = compile_expression(text, ENV, expect=BOOL).to_sql(lambda p: T.c[p], CTX, dialect)
    return str(clause.compile(dialect=DIALECTS[dialect])).replace("\n", " ")


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
@pytest.mark.parametrize("text, sql", [
    ("n > 100", "t.n > "),                                 # a plain, indexable comparison
    ("n == 3", "t.n = "),
    ("st == 'open'", "t.st = "),
    ("st in ['open', 'new']", "t.st IN "),
    ("d >= TODAY() - DAYS(7)", "t.d >= "),                 # TODAY() is a bound literal, not SQL's clock
    ("dt >= TODAY()", "t.dt >= "),
    ("d + DAYS(3) < TODAY()", "t.d < "),                   # the shift moves to the literal side
    ("dt + HOURS(2) > NOW()", "t.dt > "),
    ("n > 1 and st == 'open'", "t.n > "),
])
def test_plain_comparisons_stay_indexable(dialect, text, sql):
    rendered = render(text, dialect)
    assert rendered.startswith(sql), rendered
    assert "coalesce" not in rendered.lower() and "now()" not in rendered.lower()


def test_prefix_match_is_a_like_on_postgresql():
    assert "LIKE" in render("STARTSWITH(s, 'ab')", "postgresql")
    assert "ESCAPE '/'" in render("CONTAINS(s, 'a%')", "postgresql")


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
@pytest.mark.parametrize("text", [
    "changed(n)",                       # previous values exist only while saving a record
    "prev(n) > 1",
    "n ** 2 > 4",                       # no power in SQL
    "f % 2 == 1",                       # % only on whole numbers
    "DATE(n, 1, 1) == TODAY()",         # dates built from fields
    "d + DAYS(n) > TODAY()",            # durations built from fields
    "dt > d",                           # date-time field against a date field
    "n in tags",                        # a field's value looked up in a multi-select
    "DATE(s) == TODAY()",
    "ROUND(f, n) > 1",
    "dt - NOW() > HOURS(1)",
])
def test_what_sql_cannot_do_is_refused(dialect, text):
    compiled = compile_expression(text, ENV, expect=BOOL, allow_prev=True)
    with pytest.raises(ExpressionError) as info:
        compiled.to_sql(lambda p: T.c[p], CTX, dialect)
    assert "cannot be used in a list filter" in info.value.message
    assert info.value.position is not None


def test_time_zones_with_daylight_saving_need_postgresql_for_local_dates():
    berlin = EvalContext(now=NOW, tz=ZoneInfo("Europe/Berlin"))
    compiled = compile_expression("DATE(dt) == TODAY()", ENV, expect=BOOL)
    with pytest.raises(ExpressionError, match="daylight saving"):
        compiled.to_sql(lambda p: T.c[p], berlin, "sqlite")
    assert "timezone" in str(compiled.to_sql(lambda p: T.c[p], berlin, "postgresql")
                             .compile(dialect=DIALECTS["postgresql"]))


def test_value_expressions_and_unknown_dialects():
    value = compile_expression("n * 2 + 1", ENV).to_sql(lambda p: T.c[p], CTX, "sqlite")
    assert "t.n" in str(value)
    with pytest.raises(ValueError):
        compile_expression("n > 1", ENV).to_sql(lambda p: T.c[p], CTX, "mysql")


def test_very_long_chains_are_refused_for_sql():
    compiled = compile_expression("+".join(["n"] * 300) + " > 1", ENV, expect=BOOL)
    with pytest.raises(ExpressionError, match="list filter"):
        compiled.to_sql(lambda p: T.c[p], CTX, "sqlite")
