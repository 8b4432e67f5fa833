"""The SQL back end: a checked ``ir`` tree -> a SQLAlchemy Core clause, for SQLite and PostgreSQL.

A boolean expression becomes a condition that selects exactly the rows the Python back end
would accept. SQL's NULL is treated as false; ``cond`` tracks whether a clause may be NULL so
that ``not`` and comparisons of conditions can add a ``coalesce`` where (and only where) needed.
Sub-expressions without fields (TODAY(), DATE(...), NOW() - DAYS(7)) are computed in Python from
the context and bound as literals, so ``field > literal`` stays a plain, indexable comparison.
What SQL cannot express faithfully is refused with an ``ExpressionError``. Function translations
live in ``library_sql``.
"""
from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement, Grouping

from . import ir
from . import values as V
from .compile_py import compile_node
from .types import (
    ANY,
    BOOL,
    DATE,
    DATETIME,
    DURATION,
    LIST,
    NULL,
    NUMBER,
    TEXT,
    EvalContext,
    EvalError,
    ExpressionError,
)

MAX_SQL_DEPTH = 120        # SQLAlchemy's compiler recurses once per nested operator
FLIP = MappingProxyType({"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="})
ORDER = MappingProxyType({"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge})
ARITHMETIC = MappingProxyType({"+": operator.add, "-": operator.sub, "*": operator.mul})


def to_sql(root: ir.Node, resolve: Callable[[str], ColumnElement], ctx: EvalContext, dialect: str,
           text: str) -> ColumnElement:
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported SQL dialect {dialect!r}")
    comp = SqlCompiler(resolve, ctx, dialect, text)
    if _sql_depth(root) > MAX_SQL_DEPTH:
        comp.refuse("an expression this long", root)
    if root.type == BOOL:
        return comp.cond(root)[0]
    return comp.value(root)


def _sql_depth(node: ir.Node) -> int:
    if isinstance(node, ir.Chain):
        depth = _sql_depth(node.first)
        for s in node.steps:
            depth = max(depth, _sql_depth(s.node)) + 1
        return depth
    return 1 + max((_sql_depth(c) for c in node.children()), default=0)


def base_type(expr) -> sa.types.TypeEngine:
    t = getattr(expr, "type", None)
    if isinstance(t, sa.types.TypeDecorator):
        t = t.impl_instance
    return t


def is_decimal(expr) -> bool:
    t = base_type(expr)
    return isinstance(t, sa.Numeric) and not isinstance(t, sa.Float)


def is_datetime(expr) -> bool:
    return isinstance(base_type(expr), sa.DateTime)


class SqlCompiler:
    def __init__(self, resolve, ctx: EvalContext, dialect: str, text: str):
        self.resolve = resolve
        self.ctx = ctx
        self.dialect = dialect
        self.pg = dialect == "postgresql"
        self.text = text

    def refuse(self, what: str, node: ir.Node):
        raise ExpressionError(f"{what} cannot be used in a list filter (it cannot run in SQL) / "
                              f"此部分无法在 SQL 中执行，不能用于列表筛选", node.pos, self.text)

    # -- constants ------------------------------------------------------------------------------
    def folded(self, node: ir.Node):
        """The value of a field-free sub-tree, computed now in Python (TODAY(), NOW() - DAYS(7)...)."""
        try:
            return compile_node(node)({}, self.ctx)
        except EvalError as exc:
            raise ExpressionError(exc.message, node.pos, self.text) from None
        except Exception as exc:  # noqa: BLE001 - e.g. TODAY() - DAYS(10**9) falls off the calendar
            raise ExpressionError(f"this part cannot be computed ({type(exc).__name__}) / 此部分无法计算",
                                  node.pos, self.text) from None

    def literal(self, value, node: ir.Node, against=None) -> ColumnElement:
        if value is None:
            return sa.null()
        if isinstance(value, bool):
            return sa.true() if value else sa.false()
        if isinstance(value, datetime):
            if against is not None and is_datetime(against):
                return sa.literal(value, type_=against.type)        # the column's type stores it
            return sa.literal(value.astimezone(UTC).replace(tzinfo=None), sa.DateTime())
        if isinstance(value, date):
            return sa.literal(value, sa.Date())
        if isinstance(value, float):
            if against is not None and is_decimal(against):
                return sa.literal(V.to_decimal(value), sa.Numeric())
            return sa.literal(value, sa.Float())
        if isinstance(value, int):
            return sa.literal(value, sa.BigInteger())
        if isinstance(value, Decimal):
            return sa.literal(value, sa.Numeric())
        if isinstance(value, str):
            return sa.literal(value, sa.String())
        self.refuse("a list or duration value" if isinstance(value, (list, timedelta)) else "this value", node)

    def is_null(self, node: ir.Node) -> bool:
        return not node.has_fields and self.folded(node) is None

    def operand(self, node: ir.Node, other: ir.Node | None = None) -> ColumnElement:
        """A side of a comparison; a constant side is typed like the other (column) side."""
        if node.has_fields:
            return self.value(node)
        against = self.value(other) if isinstance(other, ir.Field) else None
        return self.literal(self.folded(node), node, against)

    # -- values ---------------------------------------------------------------------------------
    def value(self, node: ir.Node) -> ColumnElement:
        if not node.has_fields:
            return self.literal(self.folded(node), node)
        if node.type == DURATION:
            self.refuse("a duration computed from fields", node)
        if isinstance(node, ir.Field):
            return self.resolve(node.path)
        self.check_known_types(node)
        if node.type == BOOL and not isinstance(node, (ir.IfExp,)) and not (
                isinstance(node, ir.Call) and node.name in ("IF", "COALESCE", "prev")):
            return self.cond_value(node)
        if isinstance(node, ir.Unary):
            inner = self.value(node.operand)
            return -inner if node.op == "-" else inner
        if isinstance(node, ir.Chain):
            return self.chain(node)
        if isinstance(node, ir.IfExp):
            return sa.case((self.cond(node.test)[0], self.value(node.body)), else_=self.value(node.orelse))
        if isinstance(node, ir.Call):
            from .library_sql import call_value
            return call_value(self, node)
        self.refuse("a list", node)

    def check_known_types(self, node: ir.Node) -> None:
        """Operators and functions need to know what SQL they apply to."""
        if isinstance(node, ir.Call) and node.name in ("ISBLANK", "COALESCE", "IF"):
            return
        if isinstance(node, (ir.Unary, ir.Call)) and any(c.type == ANY for c in node.children()):
            self.refuse("a field of unknown type in this operation", node)

    def cond_value(self, node: ir.Node) -> ColumnElement:
        """A condition as a true/false value that is never NULL.

        Always parenthesised: on SQLite ``NOT x`` renders as ``x = 0``, and SQLAlchemy would
        otherwise emit ``b IS x = 0``, which SQLite reads as ``(b IS x) = 0``.
        """
        clause, nullable = self.cond(node)
        return Grouping(sa.func.coalesce(clause, sa.false()) if nullable else clause)

    # -- conditions -----------------------------------------------------------------------------
    def cond(self, node: ir.Node) -> tuple[ColumnElement, bool]:
        """(clause, may_be_null); a NULL clause means false."""
        if not node.has_fields:
            return (sa.true() if self.folded(node) else sa.false()), False
        if isinstance(node, ir.Field):
            if node.type != BOOL:
                self.refuse(f"'{node.path}' as a condition", node)
            return self.value(node).is_(sa.true()), False
        if isinstance(node, ir.Unary):               # not
            return sa.not_(self.cond_value(node.operand)), False
        if isinstance(node, ir.BoolOp):
            parts = [self.cond(v) for v in node.values]
            join = sa.and_ if node.op == "and" else sa.or_
            return join(*(p[0] for p in parts)), any(p[1] for p in parts)
        if isinstance(node, ir.Compare):
            nodes = (node.left, *node.rights)
            parts = [self.pair(op, nodes[i], nodes[i + 1]) for i, op in enumerate(node.ops)]
            if len(parts) == 1:
                return parts[0]
            return sa.and_(*(p[0] for p in parts)), any(p[1] for p in parts)
        if isinstance(node, ir.IfExp):
            return sa.case((self.cond(node.test)[0], self.cond_value(node.body)),
                           else_=self.cond_value(node.orelse)), False
        if isinstance(node, ir.Call):
            from .library_sql import call_cond
            self.check_known_types(node)
            return call_cond(self, node)
        self.refuse("this condition", node)

    def pair(self, op: str, a: ir.Node, b: ir.Node) -> tuple[ColumnElement, bool]:
        if op in ("in", "not in"):
            return self.membership(op, a, b)
        shifted = self.shifted_comparison(op, a, b)
        if shifted is not None:
            return shifted
        if {a.type, b.type} == {DATE, DATETIME}:
            return self.date_vs_datetime(op, a, b)
        a_null, b_null = self.is_null(a), self.is_null(b)
        if op not in ("==", "!=") and (a_null or b_null):
            return sa.false(), False                   # ordering with blank is false
        x, y = self.operand(a, b), self.operand(b, a)
        if op in ("==", "!="):
            if a_null or b_null:
                side = y if a_null else x
                return (side.is_(None) if op == "==" else side.is_not(None)), False
            if op == "!=":
                return x.is_distinct_from(y), False
            if a.has_fields and b.has_fields:
                return x.is_not_distinct_from(y), False
            return x == y, True
        if self.pg and TEXT in (a.type, b.type):
            # Python orders text by code point; PostgreSQL by the database collation unless told
            x = sa.collate(x, "C") if a.has_fields else x
            y = sa.collate(y, "C") if b.has_fields and not a.has_fields else y
        return ORDER[op](x, y), True

    def date_vs_datetime(self, op: str, a: ir.Node, b: ir.Node) -> tuple[ColumnElement, bool]:
        """A date compared with a date-time means the start of that day in the app's time zone."""
        if a.has_fields and b.has_fields:
            self.refuse("comparing a date field with a date-time field", a)
        if not a.has_fields:
            a, b, op = b, a, FLIP[op]
        moment = self.folded(b)
        if moment is None:
            return self.pair(op, a, ir.Const(None, NULL, b.pos))
        if a.type == DATETIME:       # constant date vs date-time column: a bound start-of-day
            start = V.start_of_day(V.as_date(moment, self.ctx.tz), self.ctx.tz)
            return self.pair(op, a, _const(start, DATETIME, b.pos))
        day = moment.astimezone(self.ctx.tz).date()
        midnight = V.start_of_day(day, self.ctx.tz) == moment
        col = self.value(a)
        lit = self.literal(day, b)
        if op == "<":
            return (col < lit if midnight else col <= lit), True
        if op == "<=":
            return col <= lit, True
        if op == ">":
            return col > lit, True
        if op == ">=":
            return (col >= lit if midnight else col > lit), True
        if op == "==":
            return (col == lit, True) if midnight else (sa.false(), False)
        return (col.is_distinct_from(lit), False) if midnight else (sa.true(), False)

    def shifted_comparison(self, op, a, b):
        """``x + DAYS(3) < TODAY()`` -> ``x < TODAY() - DAYS(3)``: exact, and keeps the index."""
        for side, other, o in ((a, b, op), (b, a, FLIP[op])):
            if other.has_fields or not isinstance(side, ir.Chain) or side.type not in (DATE, DATETIME):
                continue
            if not side.first.has_fields or any(s.op not in "+-" or s.node.has_fields for s in side.steps) \
                    or any(s.node.type != DURATION for s in side.steps):
                continue
            bound = self.folded(other)
            if bound is None:
                return self.pair(o, side.first, ir.Const(None, NULL, other.pos))
            for s in reversed(side.steps):
                td = self.folded(s.node)
                if td is None:
                    return sa.false() if o != "!=" else sa.true(), False
                sign = 1 if s.op == "-" else -1          # undo the step
                if side.type == DATE:
                    if isinstance(bound, datetime):
                        return None
                    bound = V.date_plus_days(bound, td, sign)
                else:
                    bound = V.datetime_plus(bound, td, self.ctx.tz, sign)
            kind = DATETIME if isinstance(bound, datetime) else DATE
            return self.pair(o, side.first, _const(bound, kind, other.pos))
        return None

    def membership(self, op: str, a: ir.Node, b: ir.Node) -> tuple[ColumnElement, bool]:
        from .library_sql import json_list_contains, text_contains
        if b.type == LIST and isinstance(b, ir.ListLit):
            clause, nullable = self.in_list(a, b)
        elif b.type == LIST and isinstance(b, ir.Field):
            if a.has_fields:
                self.refuse("looking for a field's value in a multi-select field", a)
            clause, nullable = json_list_contains(self, self.value(b), self.folded(a), a)
        elif b.type == TEXT:
            clause, nullable = text_contains(self, self.value(b), a)
        else:
            self.refuse("'in' on this value", b)
        if op == "in":
            return clause, nullable
        return sa.not_(sa.func.coalesce(clause, sa.false()) if nullable else clause), False

    def in_list(self, a: ir.Node, b: ir.ListLit) -> tuple[ColumnElement, bool]:
        x = self.value(a)
        if not b.has_fields:
            items = [i for i in self.folded(b) if i is not None]
            if not items:
                return sa.false(), False
            if a.type == DATETIME:
                items = [V.start_of_day(i, self.ctx.tz) if not isinstance(i, datetime) else i for i in items]
            # each item bound with its own type: an Integer-typed 2.5 would become 3 on PostgreSQL
            return x.in_([self.literal(i, b, against=x) for i in items]), True
        # blank items never match: x = NULL is NULL, i.e. false
        return sa.or_(*(self.pair("==", a, i)[0] if not self.is_null(i) else sa.false() for i in b.items)), True

    # -- arithmetic -----------------------------------------------------------------------------
    def chain(self, node: ir.Chain) -> ColumnElement:
        acc = self.value(node.first)
        acc_node = node.first
        for s in node.steps:
            acc = self.step(s, acc, acc_node)
            acc_node = s.node
        return acc

    def step(self, s: ir.Step, acc, left_node) -> ColumnElement:
        op, lt, rt = s.op, s.left_type, s.node.type
        if s.type == TEXT:
            right = self.value(s.node)
            return sa.func.coalesce(acc, sa.literal("")).concat(sa.func.coalesce(right, sa.literal("")))
        if NULL in (lt, rt):
            return sa.null()
        if ANY in (lt, rt):
            self.refuse("arithmetic on a field of unknown type", s.node)
        if lt == DATE and rt == DURATION and s.type == DATE and not s.node.has_fields:
            days = V.whole_days(self.folded(s.node)) * (1 if op == "+" else -1)
            if self.pg:
                return acc + sa.literal(days, sa.Integer())
            return sa.type_coerce(sa.func.date(acc, f"{days:+d} days"), sa.Date())
        if DURATION in (lt, rt):
            self.refuse(f"'{op}' with a duration here", s.node)
        right = self.operand(s.node, left_node if isinstance(left_node, ir.Field) else None)
        if lt == NUMBER and rt == NUMBER:
            if op in ("+", "-", "*"):
                return ARITHMETIC[op](acc, right)
            if op == "/":
                num = sa.Numeric() if self.pg and (is_decimal(acc) or is_decimal(right)) else sa.Float()
                return sa.cast(acc, num) / sa.type_coerce(sa.func.nullif(sa.cast(right, num), 0), num)
            if op == "%" and self.integral(acc) and self.integral(right):
                divisor = sa.func.nullif(right, 0)
                return ((acc % divisor) + divisor) % divisor   # Python's floored modulo
            self.refuse(f"'{op}' here" if op == "**" else "'%' on non-whole numbers", s.node)
        if lt == DATE and rt == DATE and op == "-":
            return self.days_between(acc, right)
        self.refuse(f"'{op}' on {lt} and {rt}", s.node)

    def integral(self, expr) -> bool:
        t = base_type(expr)
        return isinstance(t, sa.Integer)

    def days_between(self, later, earlier) -> ColumnElement:
        if self.pg:
            return later - earlier
        return sa.cast(sa.func.julianday(later) - sa.func.julianday(earlier), sa.Integer())


def _const(value, kind: str, pos: int) -> ir.Const:
    return ir.Const(value, kind, pos)
