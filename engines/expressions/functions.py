"""The function library as the checker sees it: names, one-line docs, arity and type rules.

``FUNCTIONS`` (name -> doc) is what docs and the UI list. ``SPECS`` holds, per function, how many
arguments it takes and a rule that checks argument types and gives the result type. What the
functions *do* lives in ``library_py`` (Python) and ``library_sql`` (SQL).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType

from .ir import Const, Field, ListLit, Node
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
    ORDERED,
    TEXT,
    equatable,
    type_name,
    unify,
)

Fail = Callable[[str, int], None]   # raises ExpressionError(message, position)


@dataclass(frozen=True)
class Spec:
    name: str
    doc: str
    min_args: int
    max_args: int | None
    rule: Callable[[str, tuple[Node, ...], int, Fail], tuple[str, bool]]   # -> (type, whole_days)


def _need(fname: str, i: int, arg: Node, allowed: frozenset[str] | set[str], fail: Fail) -> None:
    if arg.type not in allowed and arg.type not in (ANY, NULL):
        wanted = " or ".join(type_name(t) for t in sorted(allowed))
        fail(f"{fname}: argument {i + 1} must be {wanted}, not {type_name(arg.type)} / "
             f"{fname} 的第 {i + 1} 个参数类型不对", arg.pos)


def _cond(fname, i, arg, fail):
    if arg.type not in (BOOL, ANY, NULL):
        fail(f"{fname}: argument {i + 1} must be a condition (true/false), not {type_name(arg.type)}; "
             f"to test for blank use ISBLANK(x) / {fname} 的第 {i + 1} 个参数必须是条件", arg.pos)


def _same(fname, args, fail) -> str:
    t = unify([a.type for a in args])
    if t is None:
        first = next(a for a in args if a.type != NULL)
        odd = next(a for a in args if a.type not in (NULL, first.type))
        fail(f"{fname}: all values must have the same type ({type_name(first.type)} vs "
             f"{type_name(odd.type)}) / {fname} 的各个值类型必须一致", odd.pos)
    return t


def _if(f, args, pos, fail):
    _cond(f, 0, args[0], fail)
    return _same(f, args[1:], fail), args[1].whole_days and args[2].whole_days


def _bools(f, args, pos, fail):
    for i, a in enumerate(args):
        _cond(f, i, a, fail)
    return BOOL, False


def _isblank(f, args, pos, fail):
    return BOOL, False


def _len(f, args, pos, fail):
    _need(f, 0, args[0], {TEXT, LIST}, fail)
    return NUMBER, False


def check_option(sig_node: Node, value_node: Node, fail: Fail) -> None:
    """A literal compared with a select (or multiselect) must be one of its options."""
    if not isinstance(sig_node, Field) or not sig_node.sig.options or not isinstance(value_node, Const):
        return
    value = value_node.value
    if isinstance(value, str) and value != "" and value not in sig_node.sig.options:
        import difflib
        close = difflib.get_close_matches(value, sig_node.sig.options, n=1)
        hint = f" — did you mean '{close[0]}'?" if close else ""
        shown = ", ".join(sig_node.sig.options[:20])
        fail(f"'{value}' is not an option of {sig_node.path} (options: {shown}){hint} / "
             f"'{value}' 不是 {sig_node.path} 的选项", value_node.pos)


def elem_type(node: Node) -> str:
    return node.elem_type if isinstance(node, ListLit) else ANY


def _contains(f, args, pos, fail):
    hay, needle = args
    _need(f, 0, hay, {TEXT, LIST}, fail)
    if hay.type == TEXT:
        _need(f, 1, needle, {TEXT}, fail)
    elif hay.type == LIST and not equatable(elem_type(hay), needle.type):
        fail(f"{f}: cannot look for {type_name(needle.type)} in a list of {type_name(elem_type(hay))} / "
             f"{f} 的查找值类型与列表不符", needle.pos)
    check_option(hay, needle, fail)
    return BOOL, False


def _text_pair(f, args, pos, fail):
    for i, a in enumerate(args):
        _need(f, i, a, {TEXT}, fail)
    return BOOL, False


def _text(f, args, pos, fail):
    _need(f, 0, args[0], {TEXT}, fail)
    return TEXT, False


def _round(f, args, pos, fail):
    for i, a in enumerate(args):
        _need(f, i, a, {NUMBER}, fail)
    return NUMBER, False


def _minmax(f, args, pos, fail):
    for i, a in enumerate(args):
        _need(f, i, a, ORDERED, fail)
    t = _same(f, args, fail)
    return t, all(a.whole_days for a in args)


def _abs(f, args, pos, fail):
    _need(f, 0, args[0], {NUMBER, DURATION}, fail)
    return (args[0].type if args[0].type != NULL else NUMBER), args[0].whole_days


def _today(f, args, pos, fail):
    return DATE, False


def _now(f, args, pos, fail):
    return DATETIME, False


def _date(f, args, pos, fail):
    if len(args) == 2:
        fail("DATE takes 1 argument ('2026-01-31') or 3 (year, month, day) / DATE 需要 1 个或 3 个参数", pos)
    if len(args) == 1:
        a = args[0]
        _need(f, 0, a, {TEXT, DATE, DATETIME}, fail)
        if isinstance(a, Const) and isinstance(a.value, str) and parse_date_text(a.value) is None:
            fail(f"DATE: '{a.value}' is not a date like '2026-01-31' / '{a.value}' 不是有效日期", a.pos)
        return DATE, False
    for i, a in enumerate(args):
        _need(f, i, a, {NUMBER}, fail)
    if all(isinstance(a, Const) and isinstance(a.value, int) for a in args):
        try:
            date(*(a.value for a in args))
        except (ValueError, OverflowError):
            fail("DATE: no such date / 日期不存在", pos)
    return DATE, False


def parse_date_text(text: str) -> date | None:
    s = text.strip()
    try:
        return date.fromisoformat(s)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(s).date()
    except ValueError:
        return None


def _duration(whole_days: bool):
    def rule(f, args, pos, fail):
        _need(f, 0, args[0], {NUMBER}, fail)
        return DURATION, whole_days
    return rule


def _dates(f, args, pos, fail):
    for i, a in enumerate(args):
        _need(f, i, a, DATES, fail)
    return NUMBER, False


def _coalesce(f, args, pos, fail):
    return _same(f, args, fail), all(a.whole_days for a in args)


def _prev(f, args, pos, fail):
    return args[0].type, args[0].whole_days


def _changed(f, args, pos, fail):
    return BOOL, False


_SPECS = (
    Spec("IF", "IF(condition, a, b) — a when the condition is true, else b / 条件为真取 a，否则取 b", 3, 3, _if),
    Spec("AND", "AND(c1, c2, ...) — true when every condition is true / 所有条件都为真时为真", 1, None, _bools),
    Spec("OR", "OR(c1, c2, ...) — true when any condition is true / 任一条件为真时为真", 1, None, _bools),
    Spec("NOT", "NOT(c) — true when the condition is false or blank / 条件为假或为空时为真", 1, 1, _bools),
    Spec("ISBLANK", "ISBLANK(x) — true when x is blank, empty text or an empty list / 值为空时为真",
         1, 1, _isblank),
    Spec("LEN", "LEN(text or list) — number of characters or items; blank is 0 / 文本长度或列表项数",
         1, 1, _len),
    Spec("CONTAINS", "CONTAINS(text or list, x) — text contains x (case-sensitive) or list holds x / "
         "文本包含 x 或列表含有 x", 2, 2, _contains),
    Spec("STARTSWITH", "STARTSWITH(text, prefix) — text begins with prefix (case-sensitive) / 文本以前缀开头",
         2, 2, _text_pair),
    Spec("LOWER", "LOWER(text) — text in lower case / 转为小写", 1, 1, _text),
    Spec("UPPER", "UPPER(text) — text in upper case / 转为大写", 1, 1, _text),
    Spec("ROUND", "ROUND(x, places=0) — rounded half away from zero / 四舍五入到指定小数位", 1, 2, _round),
    Spec("MIN", "MIN(a, b, ...) — smallest value, blanks ignored / 最小值（忽略空值）", 1, None, _minmax),
    Spec("MAX", "MAX(a, b, ...) — largest value, blanks ignored / 最大值（忽略空值）", 1, None, _minmax),
    Spec("ABS", "ABS(x) — absolute value of a number or duration / 绝对值", 1, 1, _abs),
    Spec("TODAY", "TODAY() — today's date in the app's time zone / 今天（应用时区）", 0, 0, _today),
    Spec("NOW", "NOW() — the current date and time / 当前日期时间", 0, 0, _now),
    Spec("DATE", "DATE(year, month, day) or DATE('2026-01-31') or DATE(datetime) — a date / 构造日期",
         1, 3, _date),
    Spec("DAYS", "DAYS(n) — a duration of n days, e.g. due + DAYS(3) / n 天的时长", 1, 1, _duration(True)),
    Spec("HOURS", "HOURS(n) — a duration of n hours, e.g. NOW() + HOURS(2) / n 小时的时长", 1, 1,
         _duration(False)),
    Spec("DAYS_BETWEEN", "DAYS_BETWEEN(a, b) — whole days from date a to date b / 两个日期相差的天数",
         2, 2, _dates),
    Spec("YEAR", "YEAR(date) — the year of a date / 日期的年份", 1, 1, _dates),
    Spec("MONTH", "MONTH(date) — the month (1-12) of a date / 日期的月份（1-12）", 1, 1, _dates),
    Spec("COALESCE", "COALESCE(a, b, ...) — the first value that is not blank / 第一个非空值", 1, None,
         _coalesce),
    Spec("prev", "prev(field) — the field's value before this update (update rules only) / 更新前的字段值",
         1, 1, _prev),
    Spec("changed", "changed(field) — true when this create/update changes the field (update rules only) / "
         "字段在本次保存中是否变化", 1, 1, _changed),
)

SPECS: MappingProxyType[str, Spec] = MappingProxyType({s.name: s for s in _SPECS})
FUNCTIONS: MappingProxyType[str, str] = MappingProxyType({s.name: s.doc for s in _SPECS})
PREV_FUNCTIONS = frozenset({"prev", "changed"})
