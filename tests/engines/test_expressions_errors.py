"""Save-time errors of the expression language: each kind, with its 0-based character position,
an English message with its 中文 echo, and "did you mean" suggestions."""
from __future__ import annotations

import pytest

from engines.errors import DefinitionError
from engines.expressions import (
    BOOL,
    DATE,
    DATETIME,
    LIST,
    NUMBER,
    TEXT,
    ExpressionError,
    FieldSig,
    compile_expression,
)

ENV = {
    "amount": FieldSig(NUMBER), "name": FieldSig(TEXT), "due": FieldSig(DATE), "created_at": FieldSig(DATETIME),
    "active": FieldSig(BOOL), "status": FieldSig(TEXT, options=("open", "closed")),
    "tags": FieldSig(LIST, options=("vip", "new")),
    "customer": FieldSig(NUMBER, target={"industry": FieldSig(TEXT, options=("it", "retail"))}),
    "_version": FieldSig(NUMBER),
}


@pytest.mark.parametrize("text, kwargs, position, fragment", [
    # syntax error: the position of the unexpected token
    ("amount > > 1", {}, 9, "syntax error"),
    # syntax error at the end of the text
    ("amount +", {}, 8, "syntax error"),
    # unknown field, with a suggestion
    ("amount > 1 and amout < 5", {}, 15, "did you mean 'amount'"),
    # unknown field behind a lookup, with a suggestion
    ("customer.industy == 'it'", {}, 0, "did you mean 'industry'"),
    # attribute on a field that is not a lookup
    ("name.upper", {}, 0, "not a lookup field"),
    # unknown function, with a suggestion
    ("1 + SUMM(amount)", {}, 4, "unknown function 'SUMM'"),
    # function names are exact: the right spelling is suggested
    ("len(name)", {}, 0, "did you mean 'LEN'"),
    # wrong number of arguments
    ("IF(active, 1)", {}, 0, "IF takes 3 argument(s), got 2"),
    # text + number
    ("name + 1", {}, 0, "cannot use '+' with text and number"),
    # text compared with a number
    ("'a' > 1", {}, 0, "cannot compare text with number"),
    # number + date
    ("2 * (amount + due)", {}, 5, "cannot use '+' with number and date"),
    # text * number (no text repetition)
    ("name * 3", {}, 0, "text cannot be multiplied"),
    # arithmetic on true/false
    ("active + 1", {}, 0, "true/false values cannot be used"),
    # wrong argument type of a function
    ("LEN(amount)", {}, 4, "LEN: argument 1 must be"),
    # a condition that is not true/false
    ("amount and active", {}, 0, "needs a condition"),
    # dunder names
    ("__import__('os')", {}, 0, "names starting with '__'"),
    # private attribute
    ("().__class__", {}, 0, "private attributes"),
    # private name that is not a field (a private field in the env is fine, see below)
    ("_secret > 1", {}, 0, "private names"),
    # lambda
    ("(lambda: 1)()", {}, 0, "only library functions can be called"),
    ("lambda: 1", {}, 0, "lambda is not allowed"),
    # comprehension
    ("[t for t in tags]", {}, 0, "list comprehension"),
    # subscription
    ("LEN(tags[0])", {}, 4, "indexing"),
    # keyword arguments
    ("ROUND(amount, places=2)", {}, 14, "keyword arguments"),
    # walrus, f-string, starred, dict, set, tuple, is
    ("(x := 1)", {}, 1, "':=' (assignment)"),
    ("f'{name}'", {}, 0, "f-string"),
    ("MAX(*tags)", {}, 4, "'*' unpacking"),
    ("{'a': 1}", {}, 0, "dict literal"),
    ("name in ('a', 'b')", {}, 8, "tuple"),
    ("name is None", {}, 0, "'is' is not supported"),
    # operators outside the language
    ("amount // 2", {}, 0, "'//' is not supported"),
    # prev() outside update rules
    ("prev(amount) > 1", {}, 0, "only be used in rules that run on update"),
    # prev() of something that is not a field
    ("changed(amount + 1)", {"allow_prev": True}, 8, "takes a field name"),
    # result type is not the expected one
    ("amount + 1", {"expect": BOOL}, 0, "expected a true/false result, got number"),
    ("name", {"expect": NUMBER}, 0, "expected a number result, got text"),
    # a select compared with a value that is not among its options
    ("status == 'opne'", {}, 10, "not an option of status"),
    ("status in ['open', 'clsed']", {}, 19, "did you mean 'closed'"),
    ("'vipp' in tags", {}, 0, "not an option of tags"),
    ("customer.industry != 'IT'", {}, 21, "not an option of customer.industry"),
    # expression longer than 4,000 characters
    ("1" * 4001, {}, 4000, "too long"),
    # nesting deeper than 40
    ("ABS(" * 41 + "1" + ")" * 41, {}, 160, "nested too deeply"),
    # empty expression
    ("   ", {}, 0, "empty"),
    # number literal above 1e15
    ("amount > 2e15", {}, 9, "too large"),
    # literal exponent above 100
    ("amount ** 1000", {}, 10, "exponent 1000 is too large"),
    # a constant part that cannot be computed (folded at save time)
    ("amount + 9 ** 9 ** 9", {}, 9, "exponent"),
    # invalid date literal
    ("due == DATE('2026-02-30')", {}, 12, "not a date"),
    # ordering against blank is always false
    ("amount < None", {}, 0, "always false"),
    # branches of different types
    ("1 if active else 'x'", {}, 17, "same type"),
    # list items of different types
    ("name in ['a', 1]", {}, 14, "same type"),
    # positions count characters, not UTF-8 bytes
    ("'积木' + 未知", {}, 7, "unknown field '未知'"),
    # leading spaces and later lines are counted too
    ("  (amount +\n   nme)", {}, 15, "unknown field 'nme'"),
    # a function used as a field, a field used as a function
    ("TODAY > due", {}, 0, "is a function"),
    ("amount(1)", {}, 0, "is a field, not a function"),
])
def test_save_time_errors(text, kwargs, position, fragment):
    with pytest.raises(ExpressionError) as info:
        compile_expression(text, ENV, **kwargs)
    err = info.value
    assert fragment in err.message
    assert err.position == position
    assert err.expression == text
    assert " / " in err.message and any("\u4e00" <= ch <= "\u9fff" for ch in err.message)   # English / 中文


def test_error_shape():
    with pytest.raises(ExpressionError) as info:
        compile_expression("amout", ENV)
    err = info.value
    assert isinstance(err, DefinitionError)
    assert err.code == "expression_error" and err.status == 422
    assert err.details == [{"location": "expression", "position": 0, "message": err.message}]
    assert err.to_payload()["error"]["code"] == "expression_error"
    assert str(err) == err.message


@pytest.mark.parametrize("value", [None, 42, b"amount", ["amount"]])
def test_non_text_is_refused(value):
    with pytest.raises(ExpressionError) as info:
        compile_expression(value, ENV)  # type: ignore[arg-type]
    assert info.value.position is None and "must be text" in info.value.message


def test_private_field_in_env_is_allowed():
    assert compile_expression("_version > 1", ENV, expect=BOOL).names == frozenset({"_version"})


def test_loose_date_expectations():
    assert compile_expression("due + HOURS(1)", ENV, expect=DATE).result_type == DATETIME
    assert compile_expression("TODAY()", ENV, expect=DATETIME).result_type == DATE
    assert compile_expression("None", ENV, expect=TEXT).result_type == "null"


def test_unknown_expect_is_a_programming_error():
    with pytest.raises(ValueError):
        compile_expression("1", ENV, expect="money")
