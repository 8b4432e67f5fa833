"""Sample data of a pack: checking its CSV rows against the app, turning them into record bodies,
and turning stored records back into rows for an export.

A row is a dict of strings keyed by field key (``templates_library.loader`` reads the CSV). The
conventions are those of ``templates_library/packs/README.md``: a lookup cell holds the 1-based
data row of its target's CSV (listed earlier in ``sample_data``, or an earlier row of the same
file), multiselect values are separated by ``;``, a subtable cell is a JSON list of row objects,
an empty cell is no value. Fields the engines set (flow state, autonumber, formula, roll-up, user
fields, targets of compute and score rules) are not columns.

Creating the records (through the records pipeline) is ``templates_library.install``'s job.
"""
from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from engines.errors import DefinitionError
from engines.field_types import REGISTRY, FieldValueError
from engines.model import App, Entity, Field
from templates_library.loader import MANIFEST, MULTI_VALUE_SEPARATOR

MAX_ERRORS = 100


def engine_set_fields(app: App, entity: Entity) -> dict[str, str]:
    """Field key -> why it cannot be a sample-data column of ``entity``."""
    out: dict[str, str] = {}
    for f in entity.fields:
        if f.type in ("formula", "rollup", "autonumber"):
            out[f.key] = f"{f.type} fields are computed / {f.type} 字段由系统计算"
        elif f.type == "user":
            out[f.key] = "user fields are set by assignment, not by sample data / 用户字段由分派设置"
    flow = app.flow_for(entity.key)
    if flow and flow.get("state_field"):
        out[flow["state_field"]] = (f"the flow state starts at {flow.get('initial')!r}; it is not data / "
                                    f"流程状态从初始状态开始，不是数据")
    for rule in app.rules:
        if rule.get("entity") != entity.key or rule.get("kind") not in ("compute", "score"):
            continue
        targets = [rule.get("target")]
        if isinstance(rule.get("grades"), dict):
            targets.append(rule["grades"].get("field"))
        for t in targets:
            if isinstance(t, str):
                out[t] = f"set by the {rule['kind']} rule {rule.get('key')!r} / 由规则计算"
    return out


class _Errors(list):
    def add(self, location: str, message: str) -> None:
        if len(self) < MAX_ERRORS:
            self.append({"location": location, "message": message})
        elif len(self) == MAX_ERRORS:
            self.append({"location": "sample_data", "message": "more problems not shown / 更多问题未列出"})


def check_sample_data(app_doc: dict, sample_data: dict[str, list[dict[str, str]]],
                      sample_files: dict[str, str]) -> list[dict]:
    """Every problem of the sample data against the (valid) app, located by file, row and column."""
    errors = _Errors()
    app = App.from_dict(app_doc)
    order = list(sample_data)
    for position, (entity_key, rows) in enumerate(sample_data.items()):
        rel = sample_files.get(entity_key) or f"data/{entity_key}.csv"
        entity = app.entity(entity_key)
        if entity is None:
            errors.add(f"{MANIFEST}: sample_data.{entity_key}",
                       f"{entity_key!r} is not an entity of the app / 样例数据对应的实体不存在")
            continue
        counts = {e: len(sample_data[e]) for e in order[:position]}
        fields = _columns(app, entity, rows, rel, errors)
        for n, row in enumerate(rows, 1):
            _row_body(entity, fields, row, n, rel, errors,
                      lambda f, num, n=n, e=entity_key, c=counts: _check_ref(f, num, n, e, c, order))
    return list(errors)


def _columns(app: App, entity: Entity, rows: list[dict], rel: str, errors: _Errors) -> dict[str, Field]:
    banned = engine_set_fields(app, entity)
    fields: dict[str, Field] = {}
    header = list(rows[0]) if rows else []
    for column in header:
        where = f"{rel} line 1, column {column}"
        f = entity.field(column)
        if f is None:
            errors.add(where, f"{column!r} is not a field of {entity.key} / 不是实体 {entity.key} 的字段")
        elif column in banned:
            errors.add(where, f"{column!r} cannot be a column: {banned[column]}")
        else:
            fields[column] = f
    return fields


def _check_ref(f: Field, number: int, row: int, entity_key: str, counts: dict[str, int],
               order: list[str]) -> str | None:
    if f.target == entity_key:
        if number >= row:
            return (f"row {number} of the same file is not an earlier row: a row may only point at rows above "
                    f"it / 只能引用本文件中更靠前的行")
        return None
    if f.target not in counts:
        later = f.target in order
        return (f"the target {f.target!r} " + ("loads later: list it before " + entity_key + " in sample_data"
                                               if later else "has no sample data")
                + " / 关联目标没有在此之前加载的样例数据")
    if number > counts[f.target]:
        return (f"row {number} does not exist: the {f.target} data has {counts[f.target]} rows / "
                f"关联的行不存在（共 {counts[f.target]} 行）")
    return None


def _row_body(entity: Entity, fields: dict[str, Field], row: dict[str, str], n: int, rel: str,
              errors: _Errors, lookup) -> dict[str, Any]:
    """The wire body of one row; ``lookup(field, row_number)`` answers an id or an error text."""
    body: dict[str, Any] = {}
    for column, text in row.items():
        f = fields.get(column)
        if f is None or text is None or text.strip() == "":
            continue
        where = f"{rel} row {n}, column {column}"
        try:
            value = _cell_value(f, text)
        except FieldValueError as exc:
            errors.add(where, f"{text[:60]!r}: {exc}")
            continue
        if f.type == "lookup":
            answer = lookup(f, value)
            if isinstance(answer, str):
                errors.add(where, answer)
                continue
            if answer is not None:
                value = answer
        body[column] = value
    return body


def _cell_value(f: Field, text: str) -> Any:
    if f.type == "multiselect":
        value: Any = [v.strip() for v in text.split(MULTI_VALUE_SEPARATOR) if v.strip()]
    elif f.type == "subtable":
        try:
            value = json.loads(text)
        except ValueError:
            raise FieldValueError("must be a JSON list of row objects / 子表须为 JSON 行对象列表") from None
    elif f.type == "lookup":
        if not text.strip().isdigit() or int(text) < 1:
            raise FieldValueError("a lookup cell holds a row number (1, 2, …) of its target's CSV / "
                                  "关联列须为目标 CSV 的行号")
        return int(text)
    else:
        value = text
    REGISTRY[f.type].coerce(value, f)
    if f.type == "subtable":
        for item in value:
            for sub in f.fields:
                if item.get(sub.key) not in (None, ""):
                    REGISTRY[sub.type].coerce(item[sub.key], sub)
    return value


class SelfRef:
    """A lookup to an earlier row of the same file: its id is known once that row exists."""

    def __init__(self, row: int):
        self.row = row


def bodies_for(app: App, entity_key: str, rows: list[dict[str, str]], rel: str,
               ids: dict[str, list[int]]) -> tuple[list[dict], list[list[int]]]:
    """Record bodies of the rows (lookups mapped to the created ids of their targets) and the
    batches to load them in: no row points at a row of its own batch."""
    entity = app.entity(entity_key)
    errors = _Errors()
    fields = _columns(app, entity, rows, rel, errors)
    bodies: list[dict] = []
    batches: list[list[int]] = []
    current: list[int] = []
    for n, row in enumerate(rows, 1):
        refs: list[int] = []

        def lookup(f, number, refs=refs):
            if f.target == entity_key:
                refs.append(number)
                return SelfRef(number)
            return ids[f.target][number - 1]

        bodies.append(_row_body(entity, fields, row, n, rel, errors, lookup))
        if current and any(r - 1 >= current[0] for r in refs):
            batches.append(current)
            current = []
        current.append(n - 1)
    if current:
        batches.append(current)
    if errors:
        raise DefinitionError(f"Invalid sample data / 样例数据无效: {errors[0]['location']}: "
                              f"{errors[0]['message']}", list(errors))
    return bodies, batches


def resolve_self(body: dict, created: list[int]) -> dict:
    """The body with its ``SelfRef`` values replaced by the ids of the rows created before."""
    return {k: (created[v.row - 1] if isinstance(v, SelfRef) else v) for k, v in body.items()}


# ---------------------------------------------------------------------- export
def load_order(app: App) -> list[str]:
    """Entities with targets first (lookups), in the app's order otherwise; cycles keep app order."""
    done: list[str] = []
    pending = [e.key for e in app.entities]
    while pending:
        progress = False
        for key in list(pending):
            targets = {f.target for f in app.entity(key).fields if f.type == "lookup" and f.target != key}
            if targets <= set(done) | (targets - set(pending) - set(done)):
                done.append(key)
                pending.remove(key)
                progress = True
        if not progress:
            done.append(pending.pop(0))
    return done


def cell_text(f: Field, wire: Any) -> str:
    """A wire value as the text of a CSV cell (the inverse of the import conversion)."""
    if wire is None or wire == []:
        return ""
    if isinstance(wire, bool):
        return "true" if wire else "false"
    if f.type == "multiselect" and isinstance(wire, list):
        return MULTI_VALUE_SEPARATOR.join(str(v) for v in wire)
    if f.type == "subtable":
        rows = [{k: v for k, v in r.items() if k != "id"} for r in wire]
        return json.dumps(rows, ensure_ascii=False, sort_keys=True, default=str)
    if isinstance(wire, float) and wire.is_integer():
        return str(int(wire))
    if isinstance(wire, datetime | date):
        return wire.isoformat()
    if isinstance(wire, Decimal):
        return str(wire)
    return str(wire)
