"""Turning wire bodies into checked Python values, and stored rows back into wire records.

Owns: unknown/system/read-only field refusal, per-type coercion with every error collected, and
the wire shape of a record (decimals as strings, datetimes in the app time zone). The pipeline
order and the writes live in ``runtime.records``.
"""
from __future__ import annotations

import difflib
from datetime import datetime
from typing import Any

from engines.errors import PermissionDenied
from engines.field_types import REGISTRY, FieldType, FieldValueError
from engines.model import SYSTEM_FIELDS, Entity, Field

from .catalog import CompiledApp
from .permissions import Access

READONLY_EXTRAS = ("_flow", "_sla", "_tags", "_title")


def suggest(word: str, choices) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1)
    return f" — did you mean {match[0]!r}? / 是否是 {match[0]!r}？" if match else ""


def attach_tz(f: Field, value: Any, tz) -> Any:
    """A datetime sent without an offset means the app's time zone."""
    if f.type == "datetime" and isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return value
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=tz)
    return value


def _plain_fields(entity: Entity) -> dict[str, tuple[Field, Any, bool]]:
    """Fields a body writes directly (not computed, not subtables): key -> (field, coerce, datetime?)."""
    plain = entity.__dict__.get("_plain_fields")
    if plain is None:
        plain = {f.key: (f, REGISTRY[f.type].coerce, f.type == "datetime") for f in entity.fields
                 if not REGISTRY[f.type].computed and f.type != "subtable" and f.key != "owner"}
        entity.__dict__["_plain_fields"] = plain
    return plain


def coerce_body(capp: CompiledApp, entity: Entity, body: Any, access: Access, *, state_field: str | None,
                may_set_owner: bool, errors: dict[str, list[str]], prefix: str = "") -> dict[str, Any]:
    """Checked Python values of the fields a body writes; problems go into ``errors``."""
    if not isinstance(body, dict):
        errors.setdefault(prefix.rstrip(".") or "_body", []).append("must be a JSON object / 必须是 JSON 对象")
        return {}
    fields = entity.field_map
    plain = _plain_fields(entity)
    blocked = access.hidden | access.readonly
    out: dict[str, Any] = {}
    forbidden: list[str] = []
    for key, value in body.items():
        fast = plain.get(key) if isinstance(key, str) else None
        if fast is not None and key not in blocked and key != state_field:
            f, coerce, is_dt = fast
            try:
                out[key] = coerce(attach_tz(f, value, capp.tz) if is_dt else value, f)
            except FieldValueError as exc:
                errors.setdefault(f"{prefix}{key}", []).append(str(exc))
            continue
        name = f"{prefix}{key}"
        if not isinstance(key, str):
            errors.setdefault(name, []).append("unknown field / 未知字段")
            continue
        if key == "owner" and may_set_owner:
            try:
                owner = REGISTRY["user"].coerce(value, fields.get("owner") or Field("owner", "user", "owner")) \
                    if not isinstance(value, bool) else None
            except FieldValueError:
                owner = None
            if owner is None and value is not None:
                errors.setdefault(name, []).append("must be a user id / 必须是用户编号")
            out["owner"] = owner
            continue
        if key in SYSTEM_FIELDS or key in READONLY_EXTRAS:
            errors.setdefault(name, []).append("is a system field and cannot be written / 系统字段不可写入")
            continue
        f = fields.get(key)
        if f is None:
            errors.setdefault(name, []).append("unknown field / 未知字段" + suggest(key, fields))
            continue
        if key in access.hidden or key in access.readonly:
            forbidden.append(key)
            continue
        if REGISTRY[f.type].computed:
            errors.setdefault(name, []).append("is computed and cannot be written / 计算字段不可写入")
            continue
        if key == state_field:
            errors.setdefault(name, []).append(
                "is the workflow state: it changes only through transitions / 流程状态只能通过流转修改")
            continue
        if f.type == "subtable":
            out[key] = coerce_rows(capp, f, value, errors, name)
            continue
        try:
            out[key] = REGISTRY[f.type].coerce(attach_tz(f, value, capp.tz), f)
        except FieldValueError as exc:
            errors.setdefault(name, []).append(str(exc))
    if forbidden:
        raise PermissionDenied(f"You may not write {', '.join(forbidden)} / 无权写入字段 {', '.join(forbidden)}",
                               {k: ["not writable for you / 无权写入"] for k in forbidden})
    return out


def coerce_rows(capp: CompiledApp, f: Field, value: Any, errors: dict, name: str) -> list[dict] | None:
    try:
        rows = REGISTRY["subtable"].coerce(value, f)
    except FieldValueError as exc:
        errors.setdefault(name, []).append(str(exc))
        return None
    subfields = {s.key: s for s in f.fields}
    out = []
    for i, row in enumerate(rows):
        clean: dict[str, Any] = {}
        for key, val in row.items():
            sub = subfields.get(key)
            if key == "id":
                continue
            if sub is None:
                errors.setdefault(f"{name}[{i}].{key}", []).append("unknown field / 未知字段" + suggest(str(key), subfields))
                continue
            try:
                clean[key] = REGISTRY[sub.type].coerce(attach_tz(sub, val, capp.tz), sub)
            except FieldValueError as exc:
                errors.setdefault(f"{name}[{i}].{key}", []).append(str(exc))
        for sub in f.fields:
            if sub.key not in clean and sub.default is not None:
                clean[sub.key] = REGISTRY[sub.type].coerce(sub.default, sub)
            if sub.required and clean.get(sub.key) in (None, "", []):
                errors.setdefault(f"{name}[{i}].{sub.key}", []).append("is required / 必填")
        out.append(clean)
    return out


def _wire_plan(entity: Entity) -> tuple[tuple[str, Field, Any], ...]:
    """Worked out once per entity, in field order: key, field, and its to_wire (None where the stored
    value is the wire value, SUBTABLE for subtables)."""
    plan = entity.__dict__.get("_wire_plan")
    if plan is None:
        items = []
        for f in entity.fields:
            ft = REGISTRY[f.type]
            conv = SUBTABLE if f.type == "subtable" else None if type(ft).to_wire is FieldType.to_wire else ft.to_wire
            items.append((f.key, f, conv))
        plan = entity.__dict__["_wire_plan"] = tuple(items)
    return plan


SUBTABLE = object()


def to_wire(capp: CompiledApp, entity: Entity, row: dict, *, hidden=frozenset(), fields: list[str] | None = None,
            stamps: dict | None = None) -> dict:
    """The wire form of a stored record. ``stamps`` (a dict the caller keeps for one batch) remembers
    the wire form of the timestamps rows of a batch share, so each is formatted once."""
    tz = capp.tz
    get = row.get
    out: dict[str, Any] = {"id": row["id"]}
    wanted = None if fields is None else set(fields)
    everything = not hidden and wanted is None
    for key, f, conv in _wire_plan(entity):
        if not everything and (key in hidden or (wanted is not None and key not in wanted)):
            continue
        value = get(key)
        if conv is None:
            out[key] = None if value is None or value == "" or value == [] else value
        elif conv is SUBTABLE:
            if value is not None:
                out[key] = [subrow_to_wire(capp, f, r) for r in value]
        else:
            out[key] = None if value is None or value == "" or value == [] else conv(value, f, tz)
    for key in ("created_at", "updated_at"):
        if wanted is None or key in wanted:
            value = get(key)
            if value is None:
                out[key] = None
            elif stamps is None:
                out[key] = value.astimezone(tz).isoformat()
            else:
                text = stamps.get(value)
                if text is None:
                    text = stamps[value] = value.astimezone(tz).isoformat()
                out[key] = text
    for key in ("created_by", "updated_by", "owner", "_version"):
        if wanted is None or key in wanted:
            out[key] = get(key)
    if wanted is None or "_tags" in wanted:
        out["_tags"] = get("_tags") or []
    return out


def subrow_to_wire(capp: CompiledApp, f: Field, row: dict) -> dict:
    out = {"id": row.get("id")}
    for sub in f.fields:
        value = row.get(sub.key)
        out[sub.key] = None if value is None else REGISTRY[sub.type].to_wire(value, sub, capp.tz)
    return out


def title_of(entity: Entity, row: dict) -> str:
    if entity.title_field and row.get(entity.title_field) not in (None, ""):
        return str(row[entity.title_field])
    return f"#{row.get('id')}"
