"""Reading spreadsheet columns for an import: which column is which field, and each cell as the
records pipeline takes it.

Owns the mapping (given, or suggested from field labels — 中文 too — and keys; unknown, computed,
state, hidden and read-only fields refused) and the friendly reading of cells (``2026/1/31``,
``2026年1月31日``, ``1,250,000.50``, ``￥``, ``12.5%``, ``是/否``, ``√``, option labels, ``a、b``
lists, Excel dates and numbers). Type checks stay the field types'; the import itself is
``runtime.importer``'s.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any

from engines.errors import PermissionDenied, ValidationFailed
from engines.field_types import REGISTRY
from engines.model import Entity, Field

from .catalog import CompiledApp
from .permissions import Access
from .record_values import suggest

_NORM = re.compile(r"[\s_\-（）()\[\]【】:：*＊.。/]+")
_LIST_SPLIT = re.compile(r"\s*[,;，；、|\n]\s*")
_DATE = re.compile(r"^(\d{4})[/.\-年](\d{1,2})[/.\-月](\d{1,2})日?$")
_DATETIME = re.compile(r"^(\d{4})[/.\-年](\d{1,2})[/.\-月](\d{1,2})日?[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_TRUE = {"√", "✓", "✔", "真", "对", "有"}
_FALSE = {"×", "✗", "✘", "假", "错", "无"}
_TEXTUAL = ("text", "textarea", "email", "phone", "url", "select")
OWNER = Field("owner", "user", "owner")


def _norm(text: str) -> str:
    return _NORM.sub("", str(text)).casefold()


def suggest_mapping(entity: Entity, columns: list[str]) -> dict[str, str]:
    """column -> field key, for the columns whose name is a field's key or label (any language)."""
    names: dict[str, str] = {}
    for f in entity.fields:
        if not _importable(f):
            continue
        for name in (f.key, f.label, f"{f.label}{f.key}", f"{f.key}{f.label}"):
            names.setdefault(_norm(name), f.key)
    out: dict[str, str] = {}
    used: set[str] = set()
    for col in columns:
        key = names.get(_norm(col)) if col else None
        if key and key not in used:
            out[col] = key
            used.add(key)
    return out


def _importable(f: Field) -> bool:
    return not REGISTRY[f.type].computed and f.type != "subtable" and REGISTRY[f.type].has_column


def writable_fields(entity: Entity, access: Access, state_field: str | None) -> list[Field]:
    """The fields a mapping may name for this user (what ``resolve_mapping`` accepts), in the
    entity's order; ``owner`` last, for those who may reassign every record."""
    out = [f for f in entity.fields if _importable(f) and f.key != state_field
           and f.key not in access.hidden and f.key not in access.readonly]
    if access.scope("update") == "all":
        out.append(OWNER)
    return out


def resolve_mapping(capp: CompiledApp, entity: Entity, columns: list[str], given: dict | None,
                    access: Access, state_field: str | None) -> dict[int, str]:
    """column index -> field key, checked: unknown, computed, state, hidden and read-only fields refused."""
    if given is None:
        mapping: dict[str, str | None] = dict(suggest_mapping(entity, columns))
    elif not isinstance(given, dict) or not all(isinstance(k, str) and (v is None or isinstance(v, str))
                                                for k, v in given.items()):
        raise ValidationFailed('mapping must be {"column": "field"} / 映射格式应为 {"列名": "字段"}',
                               {"mapping": ["must be an object of column names to field keys"]})
    else:
        mapping = dict(given)
    errors: dict[str, list[str]] = {}
    forbidden: list[str] = []
    index = {c: i for i, c in enumerate(columns) if c}
    out: dict[int, str] = {}
    for col, key in mapping.items():
        if key in (None, ""):
            continue
        if col not in index:
            errors.setdefault(f"mapping.{col}", []).append("no such column in the file / 文件中没有该列"
                                                           + suggest(col, index))
            continue
        f = entity.field(key)
        if key == "owner" and access.scope("update") == "all":
            out[index[col]] = key
            continue
        if f is None:
            errors.setdefault(f"mapping.{col}", []).append(f"unknown field {key!r} / 未知字段" + suggest(key, entity.field_map))
        elif not _importable(f) or key == state_field:
            errors.setdefault(f"mapping.{col}", []).append(f"{key} cannot be imported / 该字段不可导入")
        elif key in access.hidden or key in access.readonly:
            forbidden.append(key)
        elif key in out.values():
            errors.setdefault(f"mapping.{col}", []).append(f"{key} is mapped twice / 字段被映射了两次")
        else:
            out[index[col]] = key
    if forbidden:
        raise PermissionDenied(f"You may not write {', '.join(forbidden)} / 无权写入字段 {', '.join(forbidden)}",
                               {k: ["not writable for you / 无权写入"] for k in forbidden})
    if errors:
        raise ValidationFailed("The column mapping is wrong / 列映射有误", errors)
    if not out:
        raise ValidationFailed("No column matches a field; give a mapping / 没有列能对应到字段，请提供映射",
                               {"mapping": [f"columns: {', '.join(c for c in columns if c)}"]})
    return out


# ---------------------------------------------------------------- cells
def cell_value(f: Field, value: Any) -> Any:
    """A spreadsheet cell as the records pipeline takes it (None: the cell is empty)."""
    return converter(f)(value)


def converter(f: Field) -> Callable[[Any], Any]:
    """The cell reader of one field, with its lookups (option labels) prepared once."""
    t = f.type
    text = _text_reader(f)
    keep_spaces = t == "textarea"

    def read(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = value if keep_spaces else value.strip()
            return None if value == "" else text(value)
        if isinstance(value, datetime):
            return value.date() if t == "date" else value.isoformat() if t == "datetime" else value.isoformat(sep=" ")
        if isinstance(value, date):
            return value.isoformat() if t != "date" else value
        if isinstance(value, time):
            return value.isoformat()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and t in _TEXTUAL:
            return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        return value

    return read


def _text_reader(f: Field) -> Callable[[str], Any]:
    t = f.type
    if t in ("number", "decimal", "currency", "percent", "rating"):
        def number(value: str) -> str:
            value = value.replace(",", "").replace("，", "").lstrip("¥￥$").strip()
            return value[:-1].strip() if t == "percent" and value.endswith("%") else value
        return number
    if t == "boolean":
        return lambda value: True if value in _TRUE else False if value in _FALSE else value
    if t == "date":
        def day(value: str) -> str:
            m = _DATE.match(value) or _DATETIME.match(value)
            return f"{int(m[1]):04}-{int(m[2]):02}-{int(m[3]):02}" if m else value
        return day
    if t == "datetime":
        def moment(value: str) -> str:
            m = _DATETIME.match(value)
            if m:
                return f"{int(m[1]):04}-{int(m[2]):02}-{int(m[3]):02}T{int(m[4]):02}:{m[5]}:{m[6] or '00'}"
            m = _DATE.match(value)
            return f"{int(m[1]):04}-{int(m[2]):02}-{int(m[3]):02}T00:00:00" if m else value
        return moment
    if t in ("select", "multiselect"):
        options = {o.value: o.value for o in f.options}
        for o in reversed(f.options):   # an option's own value wins over another's label
            options.setdefault(o.label.casefold(), o.value)
            options.setdefault(o.value.casefold(), o.value)
        if t == "select":
            return lambda value: options.get(value) or options.get(value.casefold(), value)
        return lambda value: [options.get(v) or options.get(v.casefold(), v) for v in _LIST_SPLIT.split(value) if v]
    return lambda value: value
