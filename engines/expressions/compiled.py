"""The front door: ``compile_expression`` (parse + check + compile), ``Compiled`` (evaluate in
Python or translate to SQL) and ``ExpressionCache`` (an explicit, bounded cache object).

This module owns the public objects and the promise that ``evaluate`` raises nothing but
``EvalError``; the work itself is done by ``parser``, ``checker``, ``compile_py`` and
``compile_sql``.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from sqlalchemy.sql.elements import ColumnElement

from . import ir
from .checker import check_tree
from .compile_py import compile_py
from .parser import parse
from .types import MAX_TEXT, TYPES, EvalContext, EvalError, ExpressionError, FieldSig


class Compiled:
    """A checked, compiled expression. Immutable; safe to share between threads."""
    __slots__ = ("text", "result_type", "names", "uses_prev", "expect", "allow_prev", "_root", "_fn")

    def __init__(self, text: str, root: ir.Node, fn: Callable, names: frozenset[str], uses_prev: bool,
                 expect: str | None, allow_prev: bool):
        self.text = text
        self.result_type = root.type
        self.names = names
        self.uses_prev = uses_prev
        self.expect = expect
        self.allow_prev = allow_prev
        self._root = root
        self._fn = fn

    def __repr__(self) -> str:
        return f"<Compiled {self.text!r} -> {self.result_type}>"

    def evaluate(self, values: Mapping[str, Any], ctx: EvalContext) -> Any:
        """Run against one record: ``values`` maps field keys and dotted paths to Python values."""
        try:
            result = self._fn(values, ctx)
        except EvalError as exc:
            if exc.expression is None:
                exc.expression = self.text
            raise
        except Exception as exc:  # noqa: BLE001 - nothing of Python's may escape the sandbox
            raise EvalError(f"the expression failed on this record ({type(exc).__name__}: {exc}) / "
                            f"表达式对此记录计算失败", self.text) from exc
        if result.__class__ is str and len(result) > MAX_TEXT:
            raise EvalError(f"text result is too long (over {MAX_TEXT} characters) / 文本结果过长", self.text)
        return result

    def to_sql(self, resolve: Callable[[str], ColumnElement], ctx: EvalContext, dialect: str) -> ColumnElement:
        """The same expression as a SQLAlchemy clause (a condition when the result is true/false)."""
        from .compile_sql import to_sql
        return to_sql(self._root, resolve, ctx, dialect, self.text)


def compile_expression(text: str, env: Mapping[str, FieldSig], *, expect: str | None = None,
                       allow_prev: bool = False) -> Compiled:
    """Parse, type-check and compile ``text`` against the fields in ``env``."""
    if expect is not None and expect not in TYPES:
        raise ValueError(f"unknown expected type {expect!r}")
    tree, src = parse(text)
    try:
        root, names, uses_prev = check_tree(tree, src, env, allow_prev, expect)
        fn = compile_py(root, expect)
    except ExpressionError as exc:
        if exc.expression is None:
            exc.expression = text
        raise
    except (RecursionError, MemoryError) as exc:
        raise ExpressionError("expression is too complex / 表达式过于复杂", None, text) from exc
    return Compiled(text, root, fn, names, uses_prev, expect, allow_prev)


class ExpressionCache:
    """Compiled expressions keyed by (text, env_key, expect, allow_prev); least recently used go first.

    ``env_key`` stands for the environment (e.g. the entity and the metadata revision): the
    caller promises that one key always comes with the same ``env``.
    """

    def __init__(self, maxsize: int = 4096):
        self.maxsize = maxsize
        self._items: OrderedDict[tuple, Compiled] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str, env: Mapping[str, FieldSig], env_key: Hashable, expect: str | None = None,
            allow_prev: bool = False) -> Compiled:
        if not isinstance(text, str):
            return compile_expression(text, env, expect=expect, allow_prev=allow_prev)
        key = (text, env_key, expect, allow_prev)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        compiled = compile_expression(text, env, expect=expect, allow_prev=allow_prev)
        with self._lock:
            compiled = self._items.setdefault(key, compiled)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return compiled

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
