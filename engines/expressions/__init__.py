"""The expression language of Jimu: one Python-like formula syntax for formulas, conditions,
validation rules, guards and filters, checked once at save time and compiled to a Python closure
(per record) or to a SQLAlchemy clause (filters pushed down to SQL).

Modules: ``types`` (types, errors, limits), ``parser`` (text -> allowed AST), ``checker`` (AST ->
typed ``ir``), ``functions`` (the library's arity, types and docs), ``values`` (run-time
semantics), ``compile_py`` + ``library_py`` (Python back end), ``compile_sql`` + ``library_sql``
(SQL back end), ``compiled`` (the public entry points and the cache).
"""
from .compiled import Compiled, ExpressionCache, compile_expression
from .functions import FUNCTIONS
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
    FieldSig,
)

__all__ = [
    "NUMBER", "TEXT", "BOOL", "DATE", "DATETIME", "LIST", "DURATION", "ANY", "NULL",
    "FieldSig", "EvalContext", "ExpressionError", "EvalError",
    "compile_expression", "Compiled", "ExpressionCache", "FUNCTIONS",
]
