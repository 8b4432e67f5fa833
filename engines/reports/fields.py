"""Field paths of a report: resolving ``customer.industry`` to a field and classifying its type.

Owns the report engine's view of metadata: which field a dotted path names (one hop per lookup),
what kind of value it holds (number, date, datetime, text, ...), display labels, and the
did-you-mean suggestions used by save-time validation. It knows nothing about SQL; the compiler
turns a resolved path into columns and joins.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType

from engines.model import App, Entity, Field

NUMERIC_TYPES = frozenset({"number", "decimal", "currency", "percent", "rating", "rollup"})
INTEGRAL_TYPES = frozenset({"rating"})
REF_TYPES = frozenset({"lookup", "user"})
LIST_TYPES = frozenset({"multiselect", "subtable"})
MAX_HOPS = 3

# System fields every record carries: key -> (type, English label, 中文 label).
SYSTEM_FIELD_TYPES = MappingProxyType({
    "id": ("id", "ID", "编号"),
    "created_at": ("datetime", "Created at", "创建时间"),
    "created_by": ("user", "Created by", "创建人"),
    "updated_at": ("datetime", "Updated at", "更新时间"),
    "updated_by": ("user", "Updated by", "更新人"),
    "owner": ("user", "Owner", "负责人"),
    "_version": ("number", "Version", "版本"),
})


class PathError(ValueError):
    """A path that does not name a field; the message is bilingual and user-facing."""


def system_field(key: str) -> Field | None:
    spec = SYSTEM_FIELD_TYPES.get(key)
    if spec is None:
        return None
    return Field(key=key, type=spec[0], label=f"{spec[2]} / {spec[1]}")


def entity_field(entity: Entity, key: str) -> Field | None:
    return entity.field(key) or system_field(key)


def value_kind(f: Field) -> str:
    """number | integer | date | datetime | bool | ref | list | text: what a report can do with it."""
    ftype = f.type
    if ftype == "formula":
        ftype = {"number": "number", "text": "text", "bool": "boolean", "date": "date",
                 "datetime": "datetime", "list": "multiselect"}.get(f.result_type or "number", "text")
    if ftype in INTEGRAL_TYPES or f.key == "_version":
        return "integer"
    if ftype in NUMERIC_TYPES:
        return "number"
    if ftype in ("date", "datetime"):
        return ftype
    if ftype == "boolean":
        return "bool"
    if ftype in REF_TYPES or ftype == "id":
        return "ref"
    if ftype in LIST_TYPES:
        return "list"
    return "text"


def is_numeric(f: Field) -> bool:
    return value_kind(f) in ("number", "integer")


def is_temporal(f: Field) -> bool:
    return value_kind(f) in ("date", "datetime")


def suggest(name: str, candidates: Iterable[str]) -> str:
    """' — did you mean `x`?' (bilingual) or ''."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" — did you mean `{close[0]}`? / 是否是 `{close[0]}`？" if close else ""


def field_keys(entity: Entity) -> list[str]:
    return [f.key for f in entity.fields] + list(SYSTEM_FIELD_TYPES)


@dataclass(frozen=True)
class ResolvedPath:
    """``hops`` are (entity key, lookup field key) pairs walked before ``field`` of ``entity``."""
    path: str
    hops: tuple[tuple[str, str], ...]
    entity: str
    field: Field
    label: str


def resolve_path(app: App, entity_key: str, path: str) -> ResolvedPath:
    if not isinstance(path, str) or not path:
        raise PathError("a field is required / 需要指定字段")
    parts = path.split(".")
    if len(parts) > MAX_HOPS + 1:
        raise PathError(f"`{path}` goes through more than {MAX_HOPS} lookups / 关联层级超过 {MAX_HOPS} 层")
    entity = app.entity(entity_key)
    if entity is None:
        raise PathError(f"unknown entity `{entity_key}` / 未知实体 `{entity_key}`")
    hops: list[tuple[str, str]] = []
    labels: list[str] = []
    for i, part in enumerate(parts):
        f = entity_field(entity, part)
        if f is None:
            raise PathError(f"unknown field `{part}` on `{entity.key}` / 实体 `{entity.key}` 没有字段 `{part}`"
                            + suggest(part, field_keys(entity)))
        labels.append(f.label)
        if i == len(parts) - 1:
            return ResolvedPath(path, tuple(hops), entity.key, f, " · ".join(labels))
        target = app.entity(f.target) if f.type == "lookup" and f.target else None
        if target is None:
            raise PathError(f"`{part}` is not a lookup, so `{path}` cannot go through it / "
                            f"`{part}` 不是关联字段，无法引用 `{path}`")
        hops.append((entity.key, part))
        entity = target
    raise AssertionError("unreachable")


def option_labels(f: Field) -> dict[str, str] | None:
    """Option value -> label, for select fields (the UI and charts show labels, rows keep values)."""
    if not f.options:
        return None
    return {o.value: o.label for o in f.options}
