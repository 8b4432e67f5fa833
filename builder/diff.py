"""Differences between two versions of an app's metadata, and "where used" of a field.

``diff_apps`` compares entities and fields by their stable ids (so a changed key is a rename, not
a drop and an add) and the other spec kinds by key. ``where_used`` lists every place of the app
that refers to a field, so that a rename, retirement or retype can warn before it happens.
Schema changes (DDL) are planned from these differences in ``runtime.schema_sync``.
"""
from __future__ import annotations

import json
import re
from typing import Any

SPEC_SECTIONS = ("forms", "rules", "flows", "calendars", "reports", "dashboards", "permissions")
FIELD_PROPS_NO_DDL = ("label", "help", "options", "required", "default", "default_expression",
                      "visible_if", "required_if", "readonly_if", "min", "max", "format", "placeholder")


def _by(items, attr):
    return {i.get(attr): i for i in items or [] if isinstance(i, dict)}


def _spec_key(section: str, item: dict) -> str:
    if section == "permissions":
        return f"{item.get('role')}:{item.get('entity')}"
    return str(item.get("key"))


def diff_fields(old_fields: list, new_fields: list) -> dict:
    old, new = _by(old_fields, "id"), _by(new_fields, "id")
    out: dict[str, list] = {"added": [], "retired": [], "renamed": [], "retyped": [], "changed": []}
    for fid, f in new.items():
        if fid not in old:
            out["added"].append({"id": fid, "key": f.get("key"), "type": f.get("type")})
            continue
        o = f_old = old[fid]
        if o.get("key") != f.get("key"):
            out["renamed"].append({"id": fid, "from": o.get("key"), "to": f.get("key")})
        if o.get("type") != f.get("type") or o.get("scale") != f.get("scale") or (
                o.get("max_length") != f.get("max_length") and f.get("type") in ("text", "email", "phone", "url")):
            out["retyped"].append({"id": fid, "key": f.get("key"), "from": o.get("type"), "to": f.get("type")})
        props = sorted(k for k in set(f_old) | set(f) if k not in ("id", "key", "type", "fields")
                       and f_old.get(k) != f.get(k))
        if props:
            out["changed"].append({"id": fid, "key": f.get("key"), "properties": props})
    for fid, o in old.items():
        if fid not in new:
            out["retired"].append({"id": fid, "key": o.get("key"), "type": o.get("type")})
    return out


def diff_apps(old: dict | None, new: dict) -> dict:
    """A readable structured diff: entities and fields by id, other specs by key."""
    old = old or {}
    out: dict[str, Any] = {"app": {}, "entities": {"added": [], "removed": [], "renamed": [], "changed": []}}
    for prop in ("label", "timezone", "roles", "description"):
        if old.get(prop) != new.get(prop):
            out["app"][prop] = {"from": old.get(prop), "to": new.get(prop)}
    old_e, new_e = _by(old.get("entities"), "id"), _by(new.get("entities"), "id")
    for eid, e in new_e.items():
        if eid not in old_e:
            out["entities"]["added"].append({"id": eid, "key": e.get("key")})
            continue
        o = old_e[eid]
        if o.get("key") != e.get("key"):
            out["entities"]["renamed"].append({"id": eid, "from": o.get("key"), "to": e.get("key")})
        fields = diff_fields(o.get("fields"), e.get("fields"))
        props = [k for k in ("label", "title_field", "assignee_fields", "description") if o.get(k) != e.get(k)]
        if any(fields.values()) or props:
            out["entities"]["changed"].append({"id": eid, "key": e.get("key"), "fields": fields, "properties": props})
    for eid, o in old_e.items():
        if eid not in new_e:
            out["entities"]["removed"].append({"id": eid, "key": o.get("key")})
    for section in SPEC_SECTIONS:
        a = {_spec_key(section, i): i for i in old.get(section) or [] if isinstance(i, dict)}
        b = {_spec_key(section, i): i for i in new.get(section) or [] if isinstance(i, dict)}
        sec = {"added": sorted(set(b) - set(a)), "removed": sorted(set(a) - set(b)),
               "changed": sorted(k for k in set(a) & set(b) if _canon(a[k]) != _canon(b[k]))}
        if any(sec.values()):
            out[section] = sec
    return out


def _canon(x) -> str:
    return json.dumps(x, sort_keys=True, ensure_ascii=False)


def _mentions(text: Any, key: str) -> bool:
    return isinstance(text, str) and re.search(rf"(?<![\w.]){re.escape(key)}\b", text) is not None


def _walk_strings(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk_strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk_strings(v, f"{path}[{i}]")
    elif isinstance(obj, str):
        yield path, obj


def where_used(doc: dict, entity_key: str, field_key: str) -> list[dict]:
    """Every place of the app that refers to ``entity_key.field_key``."""
    uses: list[dict] = []
    for i, e in enumerate(doc.get("entities") or []):
        if e.get("key") == entity_key and e.get("title_field") == field_key:
            uses.append({"kind": "entity", "location": f"entities[{i}].title_field"})
        for j, f in enumerate(e.get("fields") or []):
            for attr in ("expression", "default_expression", "visible_if", "required_if", "readonly_if"):
                if e.get("key") == entity_key and f.get("key") != field_key and _mentions(f.get(attr), field_key):
                    uses.append({"kind": "field", "location": f"entities[{i}].fields[{j}].{attr}"})
            roll = f.get("rollup") or {}
            if roll.get("entity") == entity_key and field_key in (roll.get("via"), roll.get("field")):
                uses.append({"kind": "rollup", "location": f"entities[{i}].fields[{j}].rollup"})
    for section in SPEC_SECTIONS:
        for i, item in enumerate(doc.get(section) or []):
            if not isinstance(item, dict):
                continue
            related = item.get("entity") in (entity_key, "*") or section in ("dashboards", "calendars")
            if section == "forms" and item.get("entity") == entity_key:
                for s, sec in enumerate(item.get("layout") or []):
                    if field_key in (sec.get("fields") or []):
                        uses.append({"kind": "form", "key": item.get("key"), "location": f"forms[{i}].layout[{s}]"})
                continue
            if not related:
                # dotted paths through lookups from another entity (customer.industry)
                for path, text in _walk_strings(item):
                    if re.search(rf"\.\b{re.escape(field_key)}\b", text):
                        uses.append({"kind": section[:-1], "key": _spec_key(section, item), "location": f"{section}[{i}].{path}"})
                continue
            for path, text in _walk_strings(item):
                if path.endswith(("label", "message", "title", "description")):
                    continue
                if text == field_key or _mentions(text, field_key):
                    uses.append({"kind": section[:-1], "key": _spec_key(section, item), "location": f"{section}[{i}].{path}"})
    return uses
