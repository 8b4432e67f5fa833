"""What each library function becomes in SQL, per dialect (SQLite, PostgreSQL).

Text matching is case-sensitive like Python: SQLite's LIKE is not, so SQLite uses ``instr`` /
``substr``; PostgreSQL uses LIKE with escaped wildcards (indexable for prefixes). Multi-select
fields are JSON text and are matched on the JSON-encoded item. Date-times are stored as naive UTC;
their local date uses ``AT TIME ZONE`` on PostgreSQL and a fixed offset on SQLite (refused for
time zones with daylight saving). Functions without a faithful translation are refused.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from . import ir
from . import values as V
from .compile_sql import SqlCompiler, base_type, is_datetime
from .types import BOOL, DATE, DATETIME, LIST, NUMBER, TEXT


def call_cond(comp: SqlCompiler, node: ir.Call) -> tuple[ColumnElement, bool]:
    name, args = node.name, node.args
    if name in ("AND", "OR"):
        parts = [comp.cond(a) for a in args]
        join = sa.and_ if name == "AND" else sa.or_
        return join(*(p[0] for p in parts)), any(p[1] for p in parts)
    if name == "NOT":
        return sa.not_(comp.cond_value(args[0])), False
    if name == "IF":
        return sa.case((comp.cond(args[0])[0], comp.cond_value(args[1])), else_=comp.cond_value(args[2])), False
    if name == "ISBLANK":
        return is_blank(comp, args[0]), False
    if name == "CONTAINS":
        return comp.membership("in", args[1], args[0])
    if name == "STARTSWITH":
        return starts_with(comp, args[0], args[1])
    if node.type == BOOL and name in ("COALESCE",):
        return call_value(comp, node), True
    comp.refuse(f"{name}()", node)


def call_value(comp: SqlCompiler, node: ir.Call) -> ColumnElement:
    name, args = node.name, node.args
    if node.type == BOOL and name not in ("IF", "COALESCE"):
        return comp.cond_value(node)
    if name == "IF":
        return sa.case((comp.cond(args[0])[0], comp.value(args[1])), else_=comp.value(args[2]))
    if name == "COALESCE":
        return sa.func.coalesce(*(comp.value(a) for a in args))
    if name == "LEN":
        return length(comp, args[0])
    if name in ("LOWER", "UPPER"):
        return getattr(sa.func, name.lower())(comp.value(args[0]))
    if name == "ABS" and node.type == NUMBER:
        return sa.func.abs(comp.value(args[0]))
    if name == "ROUND":
        return round_(comp, node)
    if name in ("MIN", "MAX"):
        return extreme(comp, node)
    if name == "DATE" and len(args) == 1 and args[0].type in (DATE, DATETIME):
        return local_date(comp, args[0])
    if name == "DAYS_BETWEEN":
        return comp.days_between(local_date(comp, args[1]), local_date(comp, args[0]))
    if name in ("YEAR", "MONTH"):
        return date_part(comp, name, local_date(comp, args[0]))
    comp.refuse(f"{name}()", node)


def as_text(x: ColumnElement) -> ColumnElement:
    """The stored text itself, bypassing a column type that would re-encode our literals."""
    return sa.type_coerce(x, sa.Text())


def is_blank(comp: SqlCompiler, arg: ir.Node) -> ColumnElement:
    x = comp.value(arg)
    if arg.type == TEXT:
        return sa.or_(x.is_(None), as_text(x) == "")
    if arg.type == LIST:
        x = as_text(x)
        return sa.or_(x.is_(None), x == "", x == "[]")
    return x.is_(None)


def length(comp: SqlCompiler, arg: ir.Node) -> ColumnElement:
    x = comp.value(arg)
    if arg.type == TEXT:
        return sa.func.coalesce(sa.func.length(x), 0)
    if arg.type == LIST and isinstance(arg, ir.Field):
        doc = sa.func.nullif(as_text(x), "")
        if comp.pg:
            doc = sa.cast(doc, sa.JSON())
        return sa.func.coalesce(sa.func.json_array_length(doc), 0)
    comp.refuse("LEN() of this value", arg)


def _like_escape(s: str) -> str:
    return s.replace("/", "//").replace("%", "/%").replace("_", "/_")


def text_contains(comp: SqlCompiler, hay: ColumnElement, needle: ir.Node) -> tuple[ColumnElement, bool]:
    hay = as_text(hay)
    if not needle.has_fields:
        value = comp.folded(needle)
        if value is None:
            return sa.false(), False
        if value == "":
            return hay.is_not(None), False
        if comp.pg:
            return hay.like(f"%{_like_escape(value)}%", escape="/"), True
        return sa.func.instr(hay, value) > 0, True
    n = comp.value(needle)
    return (sa.func.strpos(hay, n) if comp.pg else sa.func.instr(hay, n)) > 0, True


def starts_with(comp: SqlCompiler, text: ir.Node, prefix: ir.Node) -> tuple[ColumnElement, bool]:
    t = as_text(comp.value(text))
    if not prefix.has_fields:
        p = comp.folded(prefix)
        if p is None:
            return sa.false(), False
        if p == "":
            return t.is_not(None), False
        if comp.pg:
            return t.like(_like_escape(p) + "%", escape="/"), True      # a prefix LIKE can use an index
        return sa.func.substr(t, 1, len(p)) == p, True
    p = comp.value(prefix)
    if comp.pg:
        return sa.func.left(t, sa.func.char_length(p)) == p, True
    return sa.func.substr(t, 1, sa.func.length(p)) == p, True


def json_list_contains(comp: SqlCompiler, doc: ColumnElement, item, node: ir.Node) -> tuple[ColumnElement, bool]:
    """``item in multiselect`` on JSON text: match the encoded item where a list element starts.

    ``["x"``, ``, "x"`` and ``,"x"`` can only match a whole element, since inside a JSON string
    a quote is always escaped. Both ASCII-escaped and plain UTF-8 encodings are accepted.
    """
    doc = as_text(doc)
    if item is None:
        return sa.false(), False
    if not isinstance(item, str):
        comp.refuse("looking for a non-text value in a multi-select field", node)
    encodings = dict.fromkeys([json.dumps(item, ensure_ascii=False), json.dumps(item)])
    clauses = []
    for enc in encodings:
        if comp.pg:
            e = _like_escape(enc)
            clauses += [doc.like(f"[{e}%", escape="/"), doc.like(f"%, {e}%", escape="/"),
                        doc.like(f"%,{e}%", escape="/")]
        else:
            clauses += [sa.func.substr(doc, 1, len(enc) + 1) == "[" + enc,
                        sa.func.instr(doc, ", " + enc) > 0, sa.func.instr(doc, "," + enc) > 0]
    return sa.or_(*clauses), True


def round_(comp: SqlCompiler, node: ir.Call) -> ColumnElement:
    x = comp.value(node.args[0])
    places = 0
    if len(node.args) == 2:
        arg = node.args[1]
        places = comp.folded(arg) if not arg.has_fields else None
        if not isinstance(places, int) or not (0 if not comp.pg else -15) <= places <= 15:
            comp.refuse("ROUND() with these places", arg)
    if comp.pg:
        return sa.func.round(sa.cast(x, sa.Numeric()), places)
    return sa.func.round(x, places)


def extreme(comp: SqlCompiler, node: ir.Call) -> ColumnElement:
    vals = [comp.value(a) for a in node.args]
    if len(vals) == 1:
        return vals[0]
    if comp.pg:
        if node.type == TEXT:
            vals = [sa.collate(v, "C") for v in vals]
        return (sa.func.least if node.name == "MIN" else sa.func.greatest)(*vals)
    # SQLite's min()/max() give NULL if any argument is NULL; replace each blank by another
    # argument so blanks are ignored as in Python (all blank -> NULL).
    filled = [sa.func.coalesce(v, *(w for j, w in enumerate(vals) if j != i)) for i, v in enumerate(vals)]
    return (sa.func.min if node.name == "MIN" else sa.func.max)(*filled)


def local_date(comp: SqlCompiler, node: ir.Node) -> ColumnElement:
    """A date (or a date-time's date in the app's time zone) as a SQL date."""
    if not node.has_fields:
        value = comp.folded(node)
        return comp.literal(None if value is None else V.as_date(value, comp.ctx.tz), node)
    x = comp.value(node)
    if node.type == DATE:
        return x
    if comp.pg:
        zone = getattr(comp.ctx.tz, "key", None)
        if zone is None:
            shift = timedelta(minutes=_fixed_offset(comp, node))
            return sa.cast(x + sa.literal(shift, sa.Interval()), sa.Date())
        if not (is_datetime(x) and base_type(x).timezone):
            x = sa.func.timezone("UTC", x)            # naive UTC -> timestamptz
        return sa.cast(sa.func.timezone(zone, x), sa.Date())
    minutes = _fixed_offset(comp, node)
    return sa.type_coerce(sa.func.date(x, f"{minutes:+d} minutes"), sa.Date())


def _fixed_offset(comp: SqlCompiler, node: ir.Node) -> int:
    tz = comp.ctx.tz
    year = comp.ctx.now.astimezone(tz).year
    offsets = {datetime(y, m, 1, 12, tzinfo=tz).utcoffset() for y in (year - 1, year, year + 1) for m in range(1, 13)}
    if len(offsets) != 1:
        comp.refuse(f"the local date of a date-time in time zone {tz} (daylight saving; needs PostgreSQL)", node)
    return int(offsets.pop().total_seconds() // 60)


def date_part(comp: SqlCompiler, name: str, day: ColumnElement) -> ColumnElement:
    if comp.pg:
        return sa.cast(sa.extract(name.lower(), day), sa.Integer())
    return sa.cast(sa.func.strftime("%Y" if name == "YEAR" else "%m", day), sa.Integer())
