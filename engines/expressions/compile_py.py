"""The Python back end: a checked ``ir`` tree -> one closure ``fn(values, ctx)``.

Compilation happens once per expression; evaluating then calls plain nested closures (no tree
walking, no parsing). Constant sub-trees are folded at compile time (so ``9 ** 9 ** 9`` is refused
at save time), and the shapes that dominate rules — ``field == 'x'``, ``field > 10``,
``field in ['a', 'b']``, ``x if c else 0`` — get dedicated closures. Operators follow the
null-safe semantics of ``values``.
"""
from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType

from . import ir
from . import values as V
from .library_py import BUILDERS, build_call
from .types import (
    ANY,
    BOOL,
    DATE,
    DATES,
    DATETIME,
    DURATION,
    NULL,
    NUMBER,
    TEXT,
    EvalContext,
    EvalError,
    ExpressionError,
)

Fn = Callable[..., object]
ORDER_OPS = MappingProxyType({"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge})
NUMBER_OPS = MappingProxyType({"+": V.add, "-": V.sub, "*": V.mul, "/": V.div, "%": V.mod, "**": V.power})


def compile_py(root: ir.Node, expect: str | None) -> Fn:
    fn = compile_node(root)
    if expect == BOOL and not _always_bool(root):
        inner = fn
        return lambda v, c: True if inner(v, c) else False
    return fn


def _always_bool(node: ir.Node) -> bool:
    """Computed conditions always give True/False; a bool field or IF may give None."""
    if isinstance(node, (ir.Compare, ir.BoolOp)):
        return True
    if isinstance(node, ir.Unary) and node.op == "not":
        return True
    if isinstance(node, ir.Const):
        return isinstance(node.value, bool)
    return isinstance(node, ir.Call) and node.name in ("AND", "OR", "NOT", "ISBLANK", "CONTAINS", "STARTSWITH",
                                                          "changed")


def compile_node(node: ir.Node) -> Fn:
    fn = _BUILD[type(node)](node)
    if node.constant and not isinstance(node, ir.Const):
        return const_fn(fold(fn, node))
    return fn


def fold(fn: Fn, node: ir.Node):
    """Evaluate a constant sub-tree once; a failure is the formula's fault, so a save-time error."""
    ctx = EvalContext(now=datetime(2000, 1, 1, tzinfo=UTC), tz=UTC)
    try:
        return fn({}, ctx)
    except EvalError as exc:
        raise ExpressionError(exc.message, node.pos) from None
    except Exception as exc:  # noqa: BLE001 - any failure of a constant is reported at save time
        raise ExpressionError(f"this part cannot be computed ({type(exc).__name__}) / 此部分无法计算",
                              node.pos) from None


def const_fn(value) -> Fn:
    if isinstance(value, list):
        return lambda v, c: list(value)
    return lambda v, c: value


def _const(node):
    return const_fn(node.value)


def _field(node):
    key = node.path
    return lambda v, c: v.get(key)


def _list(node):
    items = [compile_node(i) for i in node.items]
    return lambda v, c: [f(v, c) for f in items]


def _unary(node):
    f = compile_node(node.operand)
    if node.op == "not":
        return lambda v, c: not f(v, c)
    if node.op == "+":
        return f
    return lambda v, c: V.neg(f(v, c))


# -- arithmetic -----------------------------------------------------------------------------------
def step_op(op: str, lt: str, rt: str, result: str) -> Callable[[object, object, object], object]:
    """The binary function ``(a, b, ctx)`` for one checked ``lt op rt``."""
    if result == TEXT:
        return V.concat
    if ANY in (lt, rt):
        return _dynamic(op)
    if NULL in (lt, rt):
        return lambda a, b, c: None
    if lt == NUMBER and rt == NUMBER:
        return NUMBER_OPS[op]
    sign = -1 if op == "-" else 1
    if op in ("+", "-"):
        if DURATION == lt == rt:
            return NUMBER_OPS[op]
        if lt == DATE and rt == DATE:
            return lambda a, b, c: V.date_minus_date(a, b, c.tz)
        if lt in DATES and rt in DATES:
            return lambda a, b, c: V.datetime_minus(a, b, c.tz)
        swap = lt == DURATION          # DURATION + date: only for "+"
        if result == DATE:
            if swap:
                return lambda a, b, c: V.date_plus_days(b, a)
            return lambda a, b, c: V.date_plus_days(a, b, sign)
        if swap:
            return lambda a, b, c: V.datetime_plus(b, a, c.tz)
        return lambda a, b, c: V.datetime_plus(a, b, c.tz, sign)
    if op == "*":
        return lambda a, b, c: V.duration_times(a, b)
    return lambda a, b, c: V.duration_div(a, b)


def _dynamic(op: str):
    """Operators on values of unknown type: pick the rule from the run-time types."""
    def fn(a, b, c):
        if op == "+" and (isinstance(a, str) or isinstance(b, str)):
            return V.concat(a, b)
        if a is None or b is None:
            return None
        lt, rt = _runtime_type(a), _runtime_type(b)
        if lt == DATE and rt == DURATION and op in "+-":
            whole = b == V.ONE_DAY * V.whole_days(b)
            return step_op(op, lt, rt, DATE if whole else DATETIME)(a, b, c)
        if DURATION in (lt, rt) or lt in DATES or rt in DATES:
            result = DATETIME if DATETIME in (lt, rt) and op in "+-" and DURATION in (lt, rt) else DURATION
            return step_op(op, lt, rt, result)(a, b, c)
        return NUMBER_OPS[op](a, b)
    return fn


def _runtime_type(x) -> str:
    if isinstance(x, datetime):
        return DATETIME
    if isinstance(x, date):
        return DATE
    if isinstance(x, timedelta):
        return DURATION
    return NUMBER


def _chain(node):
    first = compile_node(node.first)
    steps = [(step_op(s.op, s.left_type, s.node.type, s.type), compile_node(s.node)) for s in node.steps]
    if len(steps) == 1:
        op, g = steps[0]
        return lambda v, c: op(first(v, c), g(v, c), c)

    def fn(v, c):
        acc = first(v, c)
        for op, g in steps:
            acc = op(acc, g(v, c), c)
        return acc
    return fn


# -- comparisons ----------------------------------------------------------------------------------
def _simple(a: ir.Node, b: ir.Node) -> bool:
    """Plain Python comparison agrees with the language: no Decimal/float or date/date-time mixing."""
    for x, y in ((a, b), (b, a)):
        if isinstance(y, ir.Const) and (y.value is None or isinstance(y.value, (str, bool))):
            return x.type != ANY or isinstance(y.value, str) or y.value is None
        if isinstance(y, ir.Const) and isinstance(y.value, int) and x.type == NUMBER:
            return True
    return a.type == b.type and a.type in (TEXT, BOOL, DATE, DURATION)


def predicate(op: str, a: ir.Node, b: ir.Node) -> Callable[[object, object, object], bool]:
    if op in ("==", "!="):
        if _simple(a, b):
            return (lambda x, y, c: x == y) if op == "==" else (lambda x, y, c: x != y)
        if op == "==":
            return lambda x, y, c: V.equal(x, y, c.tz)
        return lambda x, y, c: not V.equal(x, y, c.tz)
    if op in ORDER_OPS:
        cmp = ORDER_OPS[op]
        if _simple(a, b):
            return lambda x, y, c: x is not None and y is not None and cmp(x, y)
        return lambda x, y, c: V.ordered(cmp, x, y, c.tz)
    if op == "in":
        return lambda x, y, c: V.member(x, y, c.tz)
    return lambda x, y, c: not V.member(x, y, c.tz)


def _constant_set(a: ir.Node, b: ir.Node):
    """``x in [constants]`` as a frozenset lookup, when hashing agrees with the language's equality."""
    if not isinstance(b, ir.ListLit) or not b.constant or a.type not in (TEXT, NUMBER, DATE, BOOL):
        return None
    items = fold(compile_node(b), b)
    members = set()
    for item in items:
        if item is None:
            continue
        if isinstance(item, datetime) or isinstance(item, list):
            return None
        members.add(item)
        if isinstance(item, float):
            members.add(V.to_decimal(item))
    return frozenset(members)


def _pair(op: str, a: ir.Node, b: ir.Node) -> Fn:
    if op in ("in", "not in"):
        members = _constant_set(a, b)
        if members is not None:
            f = compile_node(a)
            if op == "in":
                return lambda v, c: f(v, c) in members
            return lambda v, c: f(v, c) not in members
    fast = _field_vs_const(op, a, b)
    if fast is not None:
        return fast
    p, f, g = predicate(op, a, b), compile_node(a), compile_node(b)
    return lambda v, c: p(f(v, c), g(v, c), c)


def _field_vs_const(op: str, a: ir.Node, b: ir.Node) -> Fn | None:
    if not (isinstance(a, ir.Field) and isinstance(b, ir.Const) and op in ("==", "!=", *ORDER_OPS)):
        return None
    key, val = a.path, b.value
    if isinstance(val, float) and a.type in (NUMBER, ANY):
        dval = V.to_decimal(val)
        if op == "==":
            return lambda v, c: (x := v.get(key)) == val or x == dval
        if op == "!=":
            return lambda v, c: not ((x := v.get(key)) == val or x == dval)
        cmp = ORDER_OPS[op]
        return lambda v, c: (x := v.get(key)) is not None and cmp(x, dval if x.__class__ is Decimal else val)
    if not _simple(a, b):
        return None
    if op == "==":
        return lambda v, c: v.get(key) == val
    if op == "!=":
        return lambda v, c: v.get(key) != val
    cmp = ORDER_OPS[op]
    return lambda v, c: (x := v.get(key)) is not None and cmp(x, val)


def _compare(node):
    nodes = (node.left, *node.rights)
    if len(node.ops) == 1:
        return _pair(node.ops[0], node.left, node.rights[0])
    fns = [compile_node(n) for n in nodes]
    preds = [predicate(op, nodes[i], nodes[i + 1]) for i, op in enumerate(node.ops)]
    first, rest = fns[0], list(zip(preds, fns[1:], strict=True))

    def fn(v, c):
        x = first(v, c)
        for p, g in rest:
            y = g(v, c)
            if not p(x, y, c):
                return False
            x = y
        return True
    return fn


# -- conditions -----------------------------------------------------------------------------------
def _boolop(node):
    fns = [compile_node(n) for n in node.values]
    return BUILDERS["AND" if node.op == "and" else "OR"](node, fns)


def _ifexp(node):
    t, b, o = compile_node(node.test), compile_node(node.body), compile_node(node.orelse)
    if isinstance(node.body, ir.Const) and isinstance(node.orelse, ir.Const) and not isinstance(node.body.value, list) \
            and not isinstance(node.orelse.value, list):
        x, y = node.body.value, node.orelse.value
        return lambda v, c: x if t(v, c) else y
    return lambda v, c: b(v, c) if t(v, c) else o(v, c)


def _call(node):
    return build_call(node, [compile_node(a) for a in node.args])


_BUILD = MappingProxyType({
    ir.Const: _const, ir.Field: _field, ir.ListLit: _list, ir.Unary: _unary, ir.Chain: _chain,
    ir.Compare: _compare, ir.BoolOp: _boolop, ir.IfExp: _ifexp, ir.Call: _call})
