"""The vocabulary of the expression language: value types, field signatures, the evaluation
context, the two error classes and the size limits.

This module owns names and small helpers about types (compatibility, unification, display names).
It does not parse, check or evaluate anything.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from engines.errors import DefinitionError, JimuError

NUMBER, TEXT, BOOL, DATE, DATETIME, LIST, DURATION, ANY, NULL = (
    "number", "text", "bool", "date", "datetime", "list", "duration", "any", "null")
TYPES = frozenset({NUMBER, TEXT, BOOL, DATE, DATETIME, LIST, DURATION, ANY, NULL})

# Limits of the sandbox. The language has no loops, so with these operand caps the cost of one
# evaluation is bounded by the (bounded) size of the expression and of the record's values.
MAX_LENGTH = 4000            # characters of expression text
MAX_DEPTH = 40               # nesting of the syntax tree (a flat a + b + c chain counts once)
MAX_LITERAL = 10 ** 15       # largest number literal
MAX_EXPONENT = 100           # largest |exponent| of **
MAX_NUMBER = 1e100           # largest result of **
MAX_TEXT = 100_000           # longest text result

TYPE_NAMES = MappingProxyType({
    NUMBER: "number", TEXT: "text", BOOL: "true/false", DATE: "date", DATETIME: "date-time", LIST: "list",
    DURATION: "duration", ANY: "any value", NULL: "blank",
})
TYPE_NAMES_ZH = MappingProxyType({
    NUMBER: "数字", TEXT: "文本", BOOL: "布尔值", DATE: "日期", DATETIME: "日期时间", LIST: "列表",
    DURATION: "时长", ANY: "任意值", NULL: "空值",
})
ORDERED = frozenset({NUMBER, TEXT, DATE, DATETIME, DURATION})
DATES = frozenset({DATE, DATETIME})


@dataclass(frozen=True)
class FieldSig:
    """The type of one name visible to an expression.

    ``target`` is the environment of a lookup's target entity (enables ``customer.industry``);
    ``options`` are the allowed values of a select, checked against literals at save time.
    """
    type: str
    target: Mapping[str, FieldSig] | None = None
    options: tuple[str, ...] | None = None


@dataclass
class EvalContext:
    now: datetime                               # aware
    tz: ZoneInfo                                # the app's time zone
    prev: Mapping[str, Any] | None = None       # previous values on update (prev()/changed())


class ExpressionError(DefinitionError):
    """A formula refused at save time, located by a 0-based character ``position``."""
    code = "expression_error"
    status = 422

    def __init__(self, message: str, position: int | None = None, expression: str | None = None,
                 *, location: str = "expression"):
        self.position = position
        self.expression = expression
        super().__init__(message, [{"location": location, "position": position, "message": message}])


class EvalError(JimuError):
    """A formula that failed while running (value too large, bad data...)."""
    code = "expression_error"
    status = 422

    def __init__(self, message: str, expression: str | None = None):
        self.expression = expression
        super().__init__(message)


def type_name(t: str) -> str:
    return TYPE_NAMES.get(t, t)


def type_name_zh(t: str) -> str:
    return TYPE_NAMES_ZH.get(t, t)


def unify(types: list[str]) -> str | None:
    """The common type of values that may stand in the same place (branches, COALESCE...)."""
    real = [t for t in types if t != NULL]
    if not real:
        return NULL
    if ANY in real:
        return ANY
    first = real[0]
    return first if all(t == first for t in real) else None


def equatable(a: str, b: str) -> bool:
    return a == b or ANY in (a, b) or NULL in (a, b) or (a in DATES and b in DATES)


def orderable(a: str, b: str) -> bool:
    if ANY in (a, b):
        other = b if a == ANY else a
        return other in ORDERED or other == ANY
    return a in ORDERED and b in ORDERED and (a == b or (a in DATES and b in DATES))
