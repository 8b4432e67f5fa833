"""Schema sync: published entity metadata -> real SQL tables, as a plan, then applied.

``plan_schema_change`` is pure: it compares the last published metadata with the new one (entities
and fields matched by their stable ids) and answers a list of readable operations. ``apply_plan``
runs them through alembic's ``Operations`` inside the caller's (publish) transaction, so a failing
step rolls the whole publish back. ``build_tables`` gives the SQLAlchemy ``Table`` objects that the
records service and reports query. Deleting a field retires its column (renamed, data kept).
"""
from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from engines.column_types import JSONList, UTCDateTime
from engines.errors import DefinitionError
from engines.field_types import REGISTRY, FieldValueError
from engines.model import App, Entity, Field

from . import system_tables as st

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MAX_IDENT = 63


def short_hash(*parts: str, n: int = 6) -> str:
    return hashlib.sha1("/".join(parts).encode()).hexdigest()[:n]


def fit_name(prefix: str, *parts: str, salt: str) -> str:
    name = prefix + "_".join(parts)
    if len(name.encode()) <= MAX_IDENT:
        return name
    return name.encode()[:MAX_IDENT - 7].decode(errors="ignore") + "_" + short_hash(name, salt)


def index_name(table: str, field_id: str, unique: bool) -> str:
    return fit_name("ux_" if unique else "ix_", table, field_id, salt="ix")


def retired_name(field_id: str) -> str:
    return f"_r_{field_id}"[:MAX_IDENT]


def parked_name(field_id: str) -> str:
    return f"_p_{field_id}"[:MAX_IDENT]


def column_for(f: Field, *, fk_table: str | None = None) -> sa.Column:
    ft = REGISTRY[f.type]
    args = []
    if fk_table:
        args.append(sa.ForeignKey(f"{fk_table}.id"))
    return sa.Column(f.key, ft.column_type(f), *args, nullable=True)


def system_columns() -> list[sa.Column]:
    return [
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", BigId),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", BigId),
        sa.Column("owner", BigId),
        sa.Column("_version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("_tags", JSONList()),
    ]


def subtable_columns(parent_table: str) -> list[sa.Column]:
    return [
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("parent_id", BigId, sa.ForeignKey(f"{parent_table}.id", ondelete="CASCADE"), nullable=False, index=False),
        sa.Column("_pos", sa.Integer, nullable=False, server_default="0"),
    ]


def wanted_indexes(table: str, fields: list[Field], *, subtable: bool = False) -> dict[str, dict]:
    out: dict[str, dict] = {}
    if subtable:
        out[fit_name("ix_", table, "parent", salt="ix")] = {"columns": ["parent_id", "_pos"], "unique": False}
    else:
        out[fit_name("ix_", table, "owner", salt="ix")] = {"columns": ["owner"], "unique": False}
        out[fit_name("ix_", table, "created", salt="ix")] = {"columns": ["created_at"], "unique": False}
    for f in fields:
        if not REGISTRY[f.type].has_column:
            continue
        if f.unique:
            out[index_name(table, f.id or f.key, True)] = {"columns": [f.key], "unique": True, "field_id": f.id}
        elif f.indexed or f.type in ("lookup", "user", "select", "autonumber"):
            out[index_name(table, f.id or f.key, False)] = {"columns": [f.key], "unique": False, "field_id": f.id}
    return out


def plan_schema_change(app_key: str, old_doc: dict | None, new_doc: dict,
                       physical: dict[str, str], retired: dict[str, str],
                       returning: dict[str, dict] | None = None) -> list[dict]:
    """Operations that turn the tables of ``old_doc`` into those of ``new_doc``.

    ``physical`` maps entity/subtable ids to existing table names; ``retired`` maps retired field
    ids to their hidden column names; ``returning`` maps the ids of retired entities that
    ``new_doc`` brings back to their definition when they were retired (their tables still have
    those columns). Pure: reads nothing, writes nothing.
    """
    old_app = App.from_dict(old_doc) if old_doc else None
    new_app = App.from_dict(new_doc)
    old_entities = {e.id: e for e in (old_app.entities if old_app else [])}
    # what each existing table holds: the last published entity, or the entity as it was retired
    before = {eid: Entity.from_dict(raw) for eid, raw in (returning or {}).items()} | old_entities
    taken = set(physical.values())
    ops: list[dict] = []
    names: dict[str, str] = dict(physical)

    def name_for(owner_id: str, *parts: str) -> str:
        if owner_id in names:
            return names[owner_id]
        base = fit_name("e_", *parts, salt=owner_id)
        name, n = base, 1
        while name in taken:
            n += 1
            name = fit_name("e_", *parts, str(n), salt=owner_id)
        taken.add(name)
        names[owner_id] = name
        return name

    # Tables first (targets of lookups before their referrers where possible).
    for entity in new_app.entities:
        table = name_for(entity.id, app_key, entity.key)
        old = old_entities.get(entity.id)
        if entity.id not in physical:
            ops.append({"op": "create_table", "entity": entity.key, "owner_id": entity.id, "table": table,
                        "kind": "entity", "fields": [f.raw for f in entity.fields]})
        elif old is None:
            ops.append({"op": "restore_table", "entity": entity.key, "owner_id": entity.id, "table": table})
        for f in entity.fields:
            if f.type == "subtable":
                sub = name_for(f.id, app_key, entity.key, f.key)
                if f.id not in physical:
                    ops.append({"op": "create_table", "entity": f"{entity.key}.{f.key}", "owner_id": f.id,
                                "table": sub, "kind": "subtable", "parent_table": table,
                                "fields": [s.raw for s in f.fields]})
    for entity in new_app.entities:
        table = names[entity.id]
        old = before.get(entity.id)
        created = entity.id not in physical
        old_fields = {f.id: f for f in old.fields} if old and not created else {}
        _plan_fields(ops, table, entity.key, entity.id, old_fields, entity.fields, retired, created, new_app)
        for f in entity.fields:
            if f.type != "subtable":
                continue
            sub_table = names[f.id]
            old_sub = old_fields.get(f.id)
            sub_created = f.id not in physical
            old_subs = {s.id: s for s in old_sub.fields} if old_sub and old_sub.type == "subtable" and not sub_created else {}
            _plan_fields(ops, sub_table, f"{entity.key}.{f.key}", f.id, old_subs, f.fields, retired, sub_created,
                         new_app)
        old_idx = wanted_indexes(table, old.fields) if old and not created else {}
        _plan_indexes(ops, table, old_idx, wanted_indexes(table, entity.fields))
        for f in entity.fields:
            if f.type == "subtable":
                sub_table = names[f.id]
                old_sub = old_fields.get(f.id)
                old_sub_idx = (wanted_indexes(sub_table, old_sub.fields, subtable=True)
                               if old_sub and f.id in physical else {})
                _plan_indexes(ops, sub_table, old_sub_idx, wanted_indexes(sub_table, f.fields, subtable=True))
    new_ids = {e.id for e in new_app.entities}
    for eid, old in old_entities.items():
        if eid not in new_ids and eid in physical:
            ops.append({"op": "retire_table", "entity": old.key, "owner_id": eid, "table": physical[eid]})
    return ops


def _plan_fields(ops, table, entity_label, owner_id, old_fields: dict, new_fields: list[Field],
                 retired: dict[str, str], created: bool, app: App) -> None:
    # Column names are freed before they are taken again: retirements, then renames, then new
    # columns (a field removed and added back under its key, or two fields swapping keys).
    retires, renames, adds, alters = [], [], [], []
    for f in new_fields:
        if not REGISTRY[f.type].has_column:
            continue
        if created:
            continue  # columns come with create_table
        old = old_fields.get(f.id)
        if old is None:
            if f.id in retired:
                adds.append({"op": "restore_column", "table": table, "entity": entity_label, "field_id": f.id,
                             "from": retired[f.id], "to": f.key, "field": f.raw})
            else:
                adds.append({"op": "add_column", "table": table, "entity": entity_label, "field": f.raw,
                             "column": f.key, "target": f.target if f.type == "lookup" else None})
            continue
        if old.key != f.key:
            renames.append({"op": "rename_column", "table": table, "entity": entity_label, "field_id": f.id,
                            "from": old.key, "to": f.key})
        old_type = str(REGISTRY[old.type].column_type(old)) if REGISTRY[old.type].has_column else None
        new_type = str(REGISTRY[f.type].column_type(f))
        if old.type != f.type or old_type != new_type:
            alters.append({"op": "alter_type", "table": table, "entity": entity_label, "field_id": f.id,
                           "column": f.key, "from": old.raw, "field": f.raw})
    new_ids = {f.id for f in new_fields}
    for fid, old in old_fields.items():
        if fid not in new_ids and REGISTRY[old.type].has_column:
            retires.append({"op": "retire_column", "table": table, "entity": entity_label, "field_id": fid,
                            "owner_id": owner_id, "column": old.key, "to": retired_name(fid), "field": old.raw})
    if {r["to"] for r in renames} & {r["from"] for r in renames}:
        # keys passed round (a -> b, b -> a): every renamed column first steps aside
        parked = [{"op": "park_column", "table": table, "field_id": r["field_id"], "from": r["from"],
                   "to": parked_name(r["field_id"])} for r in renames]
        renames = parked + [{**r, "via": parked_name(r["field_id"])} for r in renames]
    ops.extend(retires + renames + adds + alters)


def _plan_indexes(ops, table, old: dict, new: dict) -> None:
    for name in sorted(set(old) - set(new)):
        ops.append({"op": "drop_index", "table": table, "name": name})
    for name in sorted(new):
        if name not in old or old[name]["columns"] != new[name]["columns"] or old[name]["unique"] != new[name]["unique"]:
            if name in old:
                ops.append({"op": "drop_index", "table": table, "name": name})
            ops.append({"op": "create_index", "table": table, "name": name, **{k: v for k, v in new[name].items()
                                                                               if k != "field_id"}})


def summarise(ops: list[dict]) -> dict:
    counts: dict[str, int] = {}
    for op in ops:
        counts[op["op"]] = counts.get(op["op"], 0) + 1
    return counts


def describe(op: dict) -> str:
    kind = op["op"]
    if kind == "create_table":
        return f"create table for {op['entity']}"
    if kind in ("add_column", "restore_column"):
        return f"{'add' if kind == 'add_column' else 'restore'} field {op['entity']}.{op.get('column') or op.get('to')}"
    if kind == "rename_column":
        return f"rename field {op['entity']}.{op['from']} → {op['to']} (data kept)"
    if kind == "retire_column":
        return f"retire field {op['entity']}.{op['column']} (data kept, restorable)"
    if kind == "alter_type":
        return f"change type of {op['entity']}.{op['column']}: {op['from'].get('type')} → {op['field'].get('type')}"
    if kind == "retire_table":
        return f"retire entity {op['entity']} (data kept)"
    return f"{kind.replace('_', ' ')} {op.get('name') or op.get('table')}"


def apply_plan(conn: Connection, app_key: str, ops: list[dict], new_doc: dict) -> None:
    """Run the operations inside the caller's transaction."""
    op = Operations(MigrationContext.configure(conn))
    app = App.from_dict(new_doc)
    physical = load_physical(conn, app_key)
    now = datetime.now(UTC)
    pg = conn.dialect.name == "postgresql"
    for step in ops:
        kind = step["op"]
        if kind == "create_table":
            fields = [Field.from_dict(f) for f in step["fields"]]
            cols = system_columns() if step["kind"] == "entity" else subtable_columns(step["parent_table"])
            for f in fields:
                if REGISTRY[f.type].has_column:
                    fk = None
                    if f.type == "lookup":
                        tgt = app.entity(f.target)
                        fk = physical.get(tgt.id) if tgt else None
                    cols.append(column_for(f, fk_table=fk))
            op.create_table(step["table"], *cols)
            conn.execute(st.physical_tables.insert().values(app=app_key, owner_id=step["owner_id"],
                                                            table_name=step["table"], kind=step["kind"], retired=False))
            physical[step["owner_id"]] = step["table"]
        elif kind == "add_column":
            f = Field.from_dict(step["field"])
            col = column_for(f)
            op.add_column(step["table"], col)
            if pg and f.type == "lookup":
                tgt = app.entity(f.target)
                if tgt and tgt.id in physical:
                    op.create_foreign_key(fit_name("fk_", step["table"], f.id or f.key, salt="fk"),
                                          step["table"], physical[tgt.id], [f.key], ["id"])
        elif kind in ("rename_column", "park_column"):
            op.alter_column(step["table"], step.get("via") or step["from"], new_column_name=step["to"])
        elif kind == "retire_column":
            _drop_indexes_on(conn, op, step["table"], step["column"])
            op.alter_column(step["table"], step["column"], new_column_name=step["to"])
            conn.execute(st.retired_columns.delete().where(st.retired_columns.c.app == app_key,
                                                           st.retired_columns.c.field_id == step["field_id"]))
            conn.execute(st.retired_columns.insert().values(
                app=app_key, field_id=step["field_id"], owner_id=step["owner_id"], column_name=step["to"],
                field=json.dumps(step["field"], ensure_ascii=False), retired_at=now))
        elif kind == "restore_column":
            op.alter_column(step["table"], step["from"], new_column_name=step["to"])
            conn.execute(st.retired_columns.delete().where(st.retired_columns.c.app == app_key,
                                                           st.retired_columns.c.field_id == step["field_id"]))
        elif kind == "alter_type":
            _alter_type(conn, op, step)
        elif kind == "create_index":
            _create_index(conn, op, step)
        elif kind == "drop_index":
            if step["name"] in {i["name"] for i in sa.inspect(conn).get_indexes(step["table"])}:
                op.drop_index(step["name"], table_name=step["table"])
        elif kind in ("retire_table", "restore_table"):
            conn.execute(st.physical_tables.update().where(st.physical_tables.c.app == app_key,
                                                           st.physical_tables.c.owner_id == step["owner_id"])
                         .values(retired=kind == "retire_table"))


def _drop_indexes_on(conn, op, table: str, column: str) -> None:
    for idx in sa.inspect(conn).get_indexes(table):
        if column in idx["column_names"]:
            op.drop_index(idx["name"], table_name=table)


def _create_index(conn, op, step) -> None:
    table = sa.Table(step["table"], sa.MetaData(), autoload_with=conn)
    if step["unique"]:
        cols = [table.c[c] for c in step["columns"]]
        dup = conn.execute(sa.select(*cols, sa.func.count()).where(*[c.is_not(None) for c in cols])
                           .group_by(*cols).having(sa.func.count() > 1).limit(5)).all()
        if dup:
            raise DefinitionError(
                f"Cannot make {', '.join(step['columns'])} unique: duplicate values exist / 存在重复值，无法设为唯一",
                [{"location": f"{step['table']}.{','.join(step['columns'])}",
                  "message": f"duplicates: {', '.join(repr(d[0]) for d in dup)}"}])
    op.create_index(step["name"], step["table"], step["columns"], unique=step["unique"])


def _alter_type(conn: Connection, op: Operations, step: dict) -> None:
    old, new = Field.from_dict(step["from"]), Field.from_dict(step["field"])
    ft = REGISTRY[new.type]
    table = sa.Table(step["table"], sa.MetaData(), sa.Column("id", BigId, primary_key=True),
                     sa.Column(step["column"], REGISTRY[old.type].column_type(old)))
    col = table.c[step["column"]]
    if not ft.convertible_from(old.type):
        raise DefinitionError(
            f"Cannot change {step['entity']}.{new.key} from {old.type} to {new.type} / 无法转换字段类型",
            [{"location": f"{step['entity']}.{new.key}", "message": f"{old.type} → {new.type} is not a supported conversion"}])
    bad: list[int] = []
    converted: list[tuple[int, object]] = []
    for rid, value in conn.execute(sa.select(table.c.id, col).where(col.is_not(None))):
        try:
            raw = value.isoformat() if hasattr(value, "isoformat") else value
            if new.type in ("text", "textarea", "email", "phone", "url", "select") and not isinstance(raw, str):
                raw = str(raw)
            converted.append((rid, ft.coerce(raw, new)))
        except FieldValueError:
            bad.append(rid)
    if bad:
        raise DefinitionError(
            f"Cannot change {step['entity']}.{new.key} to {new.type}: {len(bad)} record(s) hold values that do not "
            f"convert / {len(bad)} 条记录的值无法转换",
            [{"location": f"{step['entity']}.{new.key}", "message": "records that do not convert", "record_ids": bad[:100]}])
    new_type = ft.column_type(new)
    if conn.dialect.name == "sqlite":
        with op.batch_alter_table(step["table"]) as batch:
            batch.alter_column(step["column"], type_=new_type)
    else:
        quoted = conn.dialect.identifier_preparer.quote(step["column"])
        target = new_type.compile(dialect=conn.dialect)
        if isinstance(new_type, sa.types.TypeDecorator):
            target = new_type.load_dialect_impl(conn.dialect).compile(dialect=conn.dialect)
        # identifiers here come from validated keys only
        op.alter_column(step["table"], step["column"], type_=new_type,
                        postgresql_using=f"NULL::{target}" if converted and _needs_rewrite(old, new) else f"{quoted}::{target}")
    if _needs_rewrite(old, new):
        new_table = sa.Table(step["table"], sa.MetaData(), sa.Column("id", BigId, primary_key=True),
                             sa.Column(step["column"], new_type))
        for rid, value in converted:
            conn.execute(new_table.update().where(new_table.c.id == rid).values({step["column"]: value}))


def _needs_rewrite(old: Field, new: Field) -> bool:
    """Values must be re-written through the new type (e.g. date text -> date, text -> number)."""
    return old.type != new.type and not (old.type in ("text", "textarea", "email", "phone", "url", "select")
                                         and new.type in ("text", "textarea", "email", "phone", "url", "select"))


def load_physical(conn: Connection, app_key: str) -> dict[str, str]:
    rows = conn.execute(sa.select(st.physical_tables.c.owner_id, st.physical_tables.c.table_name)
                        .where(st.physical_tables.c.app == app_key))
    return {r.owner_id: r.table_name for r in rows}


def load_retired(conn: Connection, app_key: str) -> dict[str, str]:
    rows = conn.execute(sa.select(st.retired_columns.c.field_id, st.retired_columns.c.column_name)
                        .where(st.retired_columns.c.app == app_key))
    return {r.field_id: r.column_name for r in rows}


def build_tables(app: App, physical: dict[str, str]) -> tuple[sa.MetaData, dict[str, sa.Table], dict[tuple[str, str], sa.Table]]:
    """SQLAlchemy tables of the published app: by entity key, and subtables by (entity, field)."""
    md = sa.MetaData()
    tables: dict[str, sa.Table] = {}
    subs: dict[tuple[str, str], sa.Table] = {}
    for entity in app.entities:
        cols = system_columns()
        for f in entity.fields:
            if REGISTRY[f.type].has_column:
                cols.append(column_for(f))
        tables[entity.key] = sa.Table(physical[entity.id], md, *cols)
    for entity in app.entities:
        for f in entity.fields:
            if f.type == "subtable":
                cols = [sa.Column("id", BigId, primary_key=True), sa.Column("parent_id", BigId),
                        sa.Column("_pos", sa.Integer)]
                cols += [column_for(s) for s in f.fields if REGISTRY[s.type].has_column]
                subs[(entity.key, f.key)] = sa.Table(physical[f.id], md, *cols)
    return md, tables, subs


def entity_of(app: App, key: str) -> Entity:
    entity = app.entity(key)
    assert entity is not None
    return entity
