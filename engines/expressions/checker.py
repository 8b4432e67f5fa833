"""Checking: an allowed Python AST + the fields in scope -> the typed tree of ``ir``.

This module owns name resolution (fields, dotted paths through lookups, ``true/false/null``),
the type rules of operators and comparisons, select-option checks, ``prev``/``changed`` rules and
the "did you mean" suggestions. Every refusal is an ``ExpressionError`` at the character position
of the offending node. Function argument rules live in ``functions``.
"""
from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping
from types import MappingProxyType

from . import ir
from .functions import PREV_FUNCTIONS, SPECS, check_option, elem_type
from .parser import ALLOWED_BINOPS, FAMILY, Source
from .types import (
    ANY,
    BOOL,
    DATE,
    DATES,
    DATETIME,
    DURATION,
    LIST,
    NULL,
    NUMBER,
    TEXT,
    ExpressionError,
    FieldSig,
    equatable,
    orderable,
    type_name,
    type_name_zh,
    unify,
)

CONSTANT_NAMES = MappingProxyType({"true": (True, BOOL), "false": (False, BOOL), "null": (None, NULL)})
COMPARE_OPS = MappingProxyType({ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
               ast.In: "in", ast.NotIn: "not in"})


def _did_you_mean(word: str, candidates) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


def arith_type(op: str, lt: str, rt: str, lw: bool, rw: bool) -> tuple[str, bool] | None:
    """Result type (and whole-days flag) of ``lt op rt``, or None when the pair is refused."""
    if ANY in (lt, rt):
        return ANY, False
    if NULL in (lt, rt):
        other = rt if lt == NULL else lt
        if other == TEXT and op != "+":
            return None
        return (other, False) if other != BOOL and other != LIST else None
    pair = (lt, rt)
    if op == "+":
        table = {(NUMBER, NUMBER): NUMBER, (TEXT, TEXT): TEXT, (DATETIME, DURATION): DATETIME,
                 (DURATION, DATETIME): DATETIME, (DURATION, DURATION): DURATION}
        if pair == (DATE, DURATION):
            return (DATE if rw else DATETIME), False
        if pair == (DURATION, DATE):
            return (DATE if lw else DATETIME), False
    elif op == "-":
        table = {(NUMBER, NUMBER): NUMBER, (DATE, DATE): NUMBER, (DATETIME, DATETIME): DURATION,
                 (DATE, DATETIME): DURATION, (DATETIME, DATE): DURATION, (DATETIME, DURATION): DATETIME,
                 (DURATION, DURATION): DURATION}
        if pair == (DATE, DURATION):
            return (DATE if rw else DATETIME), False
    elif op == "*":
        table = {(NUMBER, NUMBER): NUMBER, (DURATION, NUMBER): DURATION, (NUMBER, DURATION): DURATION}
    elif op == "/":
        table = {(NUMBER, NUMBER): NUMBER, (DURATION, NUMBER): DURATION, (DURATION, DURATION): NUMBER}
    else:                                   # % and **
        table = {(NUMBER, NUMBER): NUMBER}
    t = table.get(pair)
    if t is None:
        return None
    if t != DURATION:
        return t, False
    if op in ("+", "-"):
        return t, lw and rw
    return t, (lw if lt == DURATION else rw) if op == "*" else False


def _arith_message(op: str, lt: str, rt: str) -> str:
    if op == "*" and TEXT in (lt, rt):
        return "text cannot be multiplied / 文本不能做乘法"
    if BOOL in (lt, rt):
        return (f"true/false values cannot be used with '{op}'; use IF(condition, 1, 0) / "
                f"布尔值不能做 '{op}' 运算，可用 IF(条件, 1, 0)")
    return (f"cannot use '{op}' with {type_name(lt)} and {type_name(rt)} / "
            f"不能对{type_name_zh(lt)}和{type_name_zh(rt)}使用 '{op}'")


class Checker:
    def __init__(self, src: Source, env: Mapping[str, FieldSig], allow_prev: bool):
        self.src = src
        self.env = env
        self.allow_prev = allow_prev
        self.names: set[str] = set()
        self.uses_prev = False

    def fail(self, message: str, pos: int | None):
        raise ExpressionError(message, pos, self.src.text)

    def check(self, node: ast.expr) -> ir.Node:
        return getattr(self, "_" + type(node).__name__)(node)

    # -- leaves ---------------------------------------------------------------------------------
    def _Constant(self, node):
        v, pos = node.value, self.src.pos(node)
        if v is None:
            return ir.Const(None, NULL, pos)
        if isinstance(v, bool):
            return ir.Const(v, BOOL, pos)
        if isinstance(v, str):
            return ir.Const(v, TEXT, pos)
        return ir.Const(v, NUMBER, pos)

    def _Name(self, node):
        found = self.resolve_name(node)
        if isinstance(found, ir.Field):
            self.names.add(found.path)
        return found

    def resolve_name(self, node: ast.Name) -> ir.Node:
        name, pos = node.id, self.src.pos(node)
        sig = self.env.get(name)
        if sig is None and name in CONSTANT_NAMES:
            value, t = CONSTANT_NAMES[name]
            return ir.Const(value, t, pos)
        if sig is None:
            if name.startswith("_"):
                self.fail(f"'{name}': private names are not allowed / 不允许使用私有名称 '{name}'", pos)
            if name in SPECS:
                self.fail(f"'{name}' is a function: call it as {name}(...) / '{name}' 是函数，请写成 {name}(...)", pos)
            self.fail(f"unknown field '{name}'{_did_you_mean(name, self.env)} / 未知字段 '{name}'", pos)
        return ir.Field(name, sig, pos)

    def _Attribute(self, node):
        chain = []
        cur = node
        while isinstance(cur, ast.Attribute):
            chain.append(cur)
            cur = cur.value
        if not isinstance(cur, ast.Name):            # the parser only lets names through
            self.fail("'.' is only allowed after a lookup field / '.' 只能用于关联字段", self.src.pos(node))
        base = self.resolve_name(cur)
        if not isinstance(base, ir.Field):
            self.fail(f"'{cur.id}' has no fields / '{cur.id}' 没有字段", self.src.pos(node))
        path, sig = base.path, base.sig
        for attr in reversed(chain):
            if sig.target is None:
                self.fail(f"'{path}' is not a lookup field, so '.{attr.attr}' cannot follow it / "
                          f"'{path}' 不是关联字段，不能使用 '.{attr.attr}'", self.src.pos(attr))
            nxt = sig.target.get(attr.attr)
            if nxt is None:
                self.fail(f"unknown field '{attr.attr}' on '{path}'{_did_you_mean(attr.attr, sig.target)} / "
                          f"'{path}' 没有字段 '{attr.attr}'", self.src.pos(attr))
            path, sig = f"{path}.{attr.attr}", nxt
        self.names.add(path)
        return ir.Field(path, sig, self.src.pos(node))

    def _List(self, node):
        items = tuple(self.check(e) for e in node.elts)
        t = unify([i.type for i in items])
        if t is None:
            first = next(i for i in items if i.type != NULL)
            odd = next(i for i in items if i.type not in (NULL, first.type))
            self.fail(f"list items must have the same type ({type_name(first.type)} vs {type_name(odd.type)}) / "
                      f"列表中各项类型必须一致", odd.pos)
        if t in (LIST,):
            self.fail("lists of lists are not supported / 不支持嵌套列表", self.src.pos(node))
        return ir.ListLit(items, t if items else ANY, self.src.pos(node))

    # -- operators ------------------------------------------------------------------------------
    def _UnaryOp(self, node):
        pos = self.src.pos(node)
        operand = self.check(node.operand)
        if isinstance(node.op, ast.Not):
            self.need_condition(operand, "not")
            return ir.Unary("not", operand, BOOL, pos)
        op = "-" if isinstance(node.op, ast.USub) else "+"
        if operand.type not in (NUMBER, DURATION, ANY, NULL):
            self.fail(f"cannot use unary '{op}' on {type_name(operand.type)} / 不能对"
                      f"{type_name_zh(operand.type)}使用 '{op}'", pos)
        if isinstance(operand, ir.Const) and operand.type == NUMBER:
            return ir.Const(-operand.value if op == "-" else operand.value, NUMBER, pos)
        return ir.Unary(op, operand, operand.type if operand.type != NULL else NUMBER, pos)

    def _BinOp(self, node):
        family = FAMILY[type(node.op)]
        spine = []
        cur = node
        while isinstance(cur, ast.BinOp) and FAMILY.get(type(cur.op)) == family:
            spine.append(cur)
            cur = cur.left
        spine.reverse()
        first = self.check(cur)
        acc_type, acc_whole = first.type, first.whole_days
        steps = []
        for b in spine:
            op = ALLOWED_BINOPS[type(b.op)]
            right = self.check(b.right)
            res = arith_type(op, acc_type, right.type, acc_whole, right.whole_days)
            if res is None:
                self.fail(_arith_message(op, acc_type, right.type), self.src.pos(b))
            steps.append(ir.Step(op, right, res[0], acc_type, self.src.pos(b)))
            acc_type, acc_whole = res
        return ir.Chain(first, tuple(steps), acc_type, self.src.pos(node), acc_whole)

    def _BoolOp(self, node):
        op = "and" if isinstance(node.op, ast.And) else "or"
        values = tuple(self.check(v) for v in node.values)
        for v in values:
            self.need_condition(v, op)
        return ir.BoolOp(op, values, self.src.pos(node))

    def _Compare(self, node):
        pos = self.src.pos(node)
        left = self.check(node.left)
        rights = []
        prev = left
        for op_node, comp in zip(node.ops, node.comparators, strict=True):
            op = COMPARE_OPS[type(op_node)]
            right = self.check(comp)
            self.check_pair(op, prev, right, pos)
            rights.append(right)
            prev = right
        return ir.Compare(left, tuple(COMPARE_OPS[type(o)] for o in node.ops), tuple(rights), pos)

    def check_pair(self, op: str, a: ir.Node, b: ir.Node, pos: int) -> None:
        lt, rt = a.type, b.type
        if op in ("==", "!="):
            if not equatable(lt, rt):
                self.fail(f"cannot compare {type_name(lt)} with {type_name(rt)} / 不能比较{type_name_zh(lt)}和"
                          f"{type_name_zh(rt)}", pos)
            check_option(a, b, self.fail)
            check_option(b, a, self.fail)
        elif op in ("in", "not in"):
            if lt == NULL:
                self.fail("blank is never in anything: use ISBLANK(x) / 空值不属于任何集合，请用 ISBLANK(x)", pos)
            if rt == LIST:
                if not equatable(lt, elem_type(b)):
                    self.fail(f"cannot look for {type_name(lt)} in a list of {type_name(elem_type(b))} / "
                              f"查找值类型与列表不符", pos)
                if isinstance(b, ir.ListLit):
                    for item in b.items:
                        check_option(a, item, self.fail)
                check_option(b, a, self.fail)
            elif rt == TEXT:
                if lt not in (TEXT, ANY):
                    self.fail(f"'in' text needs text on the left, not {type_name(lt)} / 'in' 文本时左边必须是文本", pos)
            elif rt != ANY:
                self.fail(f"'{op}' needs a list or text on the right, not {type_name(rt)} / "
                          f"'{op}' 右边必须是列表或文本", pos)
        else:
            if NULL in (lt, rt):
                self.fail(f"'{op}' with blank is always false: use ISBLANK(x) / 与空值比较大小总为假，请用 ISBLANK(x)", pos)
            if not orderable(lt, rt):
                self.fail(f"cannot compare {type_name(lt)} with {type_name(rt)} using '{op}' / 不能用 '{op}' 比较"
                          f"{type_name_zh(lt)}和{type_name_zh(rt)}", pos)

    def _IfExp(self, node):
        test = self.check(node.test)
        self.need_condition(test, "if")
        body, orelse = self.check(node.body), self.check(node.orelse)
        t = unify([body.type, orelse.type])
        if t is None:
            self.fail(f"both branches must have the same type ({type_name(body.type)} vs {type_name(orelse.type)}) / "
                      f"两个分支的类型必须一致", orelse.pos)
        return ir.IfExp(test, body, orelse, t, self.src.pos(node))

    def need_condition(self, node: ir.Node, where: str) -> None:
        if node.type not in (BOOL, ANY, NULL):
            self.fail(f"'{where}' needs a condition (true/false), not {type_name(node.type)}; to test for blank "
                      f"use ISBLANK(x) / '{where}' 需要条件（真/假），判断是否为空请用 ISBLANK(x)", node.pos)

    # -- calls ----------------------------------------------------------------------------------
    def _Call(self, node):
        name, pos = node.func.id, self.src.pos(node)
        spec = SPECS.get(name)
        if spec is None:
            self._unknown_function(name, pos)
        n = len(node.args)
        if n < spec.min_args or (spec.max_args is not None and n > spec.max_args):
            want = (str(spec.min_args) if spec.min_args == spec.max_args else
                    f"at least {spec.min_args}" if spec.max_args is None else f"{spec.min_args} to {spec.max_args}")
            self.fail(f"{name} takes {want} argument(s), got {n} / {name} 需要 {want} 个参数，实际 {n} 个", pos)
        if name in PREV_FUNCTIONS:
            return self._prev_call(name, node, pos)
        args = tuple(self.check(a) for a in node.args)
        t, whole = spec.rule(name, args, pos, self.fail)
        return ir.Call(name, args, t, pos, whole)

    def _unknown_function(self, name: str, pos: int):
        if name in self.env:
            self.fail(f"'{name}' is a field, not a function / '{name}' 是字段，不是函数", pos)
        guess = name.upper() if name.upper() in SPECS else name.lower() if name.lower() in PREV_FUNCTIONS else None
        hint = f" — did you mean '{guess}'?" if guess else _did_you_mean(name.upper(), SPECS)
        self.fail(f"unknown function '{name}'{hint} / 未知函数 '{name}'", pos)

    def _prev_call(self, name: str, node: ast.Call, pos: int):
        if not self.allow_prev:
            self.fail(f"{name}() can only be used in rules that run on update / {name}() 只能用于更新时运行的规则", pos)
        arg = node.args[0]
        if not isinstance(arg, ast.Name) or arg.id not in self.env:
            self.fail(f"{name}() takes a field name, as in {name}(status) / {name}() 的参数必须是字段名",
                      self.src.pos(arg))
        field = self._Name(arg)
        self.uses_prev = True
        t, whole = SPECS[name].rule(name, (field,), pos, self.fail)
        return ir.Call(name, (field,), t, pos, whole)


def check_expect(root: ir.Node, expect: str | None, src: Source) -> None:
    if expect is None or expect == ANY:
        return
    t = root.type
    if t == expect or t == ANY or (t == NULL and expect != BOOL) or (expect in DATES and t in DATES):
        return
    extra = "; to test for blank use ISBLANK(x)" if expect == BOOL else ""
    raise ExpressionError(f"expected a {type_name(expect)} result, got {type_name(t)}{extra} / "
                          f"结果应为{type_name_zh(expect)}，实际为{type_name_zh(t)}", root.pos, src.text)


def check_tree(tree: ast.expr, src: Source, env: Mapping[str, FieldSig], allow_prev: bool, expect: str | None):
    checker = Checker(src, env, allow_prev)
    root = checker.check(tree)
    check_expect(root, expect, src)
    return root, frozenset(checker.names), checker.uses_prev

