"""The checked, typed tree both back ends compile from.

The checker turns Python's AST into these nodes once; every node knows its result type, its
character position, whether it reads record fields (``has_fields``) and whether its value depends
on the evaluation context (``uses_ctx``: the clock, the time zone, previous values). Nodes without
fields and context are constants and are folded at compile time. This module owns the node shapes
only.
"""
from __future__ import annotations

from typing import Any

from .types import BOOL, DATETIME, LIST, FieldSig


class Node:
    __slots__ = ("type", "pos", "has_fields", "uses_ctx", "whole_days")

    def __init__(self, type: str, pos: int, children: tuple[Node, ...] = ()):
        self.type = type
        self.pos = pos
        self.has_fields = any(c.has_fields for c in children)
        self.uses_ctx = type == DATETIME or any(c.uses_ctx for c in children)
        self.whole_days = False      # a duration known to be whole days (DAYS(n)): date + it is a date

    def children(self) -> tuple[Node, ...]:
        return ()

    @property
    def constant(self) -> bool:
        return not self.has_fields and not self.uses_ctx


class Const(Node):
    __slots__ = ("value",)

    def __init__(self, value: Any, type: str, pos: int):
        super().__init__(type, pos)
        self.value = value


class Field(Node):
    __slots__ = ("path", "sig")

    def __init__(self, path: str, sig: FieldSig, pos: int):
        super().__init__(sig.type, pos)
        self.path = path
        self.sig = sig
        self.has_fields = True


class ListLit(Node):
    __slots__ = ("items", "elem_type")

    def __init__(self, items: tuple[Node, ...], elem_type: str, pos: int):
        super().__init__(LIST, pos, items)
        self.items = items
        self.elem_type = elem_type

    def children(self):
        return self.items


class Unary(Node):
    __slots__ = ("op", "operand")

    def __init__(self, op: str, operand: Node, type: str, pos: int):
        super().__init__(type, pos, (operand,))
        self.op = op                 # "-", "+", "not"
        self.operand = operand
        self.whole_days = operand.whole_days

    def children(self):
        return (self.operand,)


class Step:
    """One link of a left-associative chain: ``acc <op> node`` giving ``type``."""
    __slots__ = ("op", "node", "type", "left_type", "pos")

    def __init__(self, op: str, node: Node, type: str, left_type: str, pos: int):
        self.op, self.node, self.type, self.left_type, self.pos = op, node, type, left_type, pos


class Chain(Node):
    """``first op1 x1 op2 x2 ...`` of one precedence level, evaluated left to right."""
    __slots__ = ("first", "steps")

    def __init__(self, first: Node, steps: tuple[Step, ...], type: str, pos: int, whole_days: bool = False):
        super().__init__(type, pos, (first, *(s.node for s in steps)))
        self.first = first
        self.steps = steps
        self.whole_days = whole_days

    def children(self):
        return (self.first, *(s.node for s in self.steps))


class Compare(Node):
    __slots__ = ("left", "ops", "rights")

    def __init__(self, left: Node, ops: tuple[str, ...], rights: tuple[Node, ...], pos: int):
        super().__init__(BOOL, pos, (left, *rights))
        self.left, self.ops, self.rights = left, ops, rights
        # comparing a date with a date-time needs the time zone
        self.uses_ctx = self.uses_ctx or any(n.type == DATETIME for n in (left, *rights))

    def children(self):
        return (self.left, *self.rights)


class BoolOp(Node):
    __slots__ = ("op", "values")

    def __init__(self, op: str, values: tuple[Node, ...], pos: int):
        super().__init__(BOOL, pos, values)
        self.op = op                 # "and" / "or"
        self.values = values

    def children(self):
        return self.values


class IfExp(Node):
    __slots__ = ("test", "body", "orelse")

    def __init__(self, test: Node, body: Node, orelse: Node, type: str, pos: int):
        super().__init__(type, pos, (test, body, orelse))
        self.test, self.body, self.orelse = test, body, orelse
        self.whole_days = body.whole_days and orelse.whole_days

    def children(self):
        return (self.test, self.body, self.orelse)


class Call(Node):
    __slots__ = ("name", "args")

    CONTEXT_FUNCTIONS = frozenset({"TODAY", "NOW", "prev", "changed"})

    def __init__(self, name: str, args: tuple[Node, ...], type: str, pos: int, whole_days: bool = False):
        super().__init__(type, pos, args)
        self.name = name
        self.args = args
        self.whole_days = whole_days
        if name in self.CONTEXT_FUNCTIONS or any(a.type == DATETIME for a in args):
            self.uses_ctx = True

    def children(self):
        return self.args


def walk(node: Node):
    """All nodes of a tree (iteratively: chains may be long)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(n.children())
