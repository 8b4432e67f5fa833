"""The records service: create, read, update, delete and list records of published entities.

One call is one pipeline inside the caller's transaction: permission check → coerce the body →
defaults → formulas → engine hooks (rules, flows) → conditions (required/required_if/readonly_if)
→ uniqueness and lookup checks → write row, subtable rows, audit entry → engine after-hooks
(flow start, timers, outbox). Any error raises before anything is committed by the caller.
The engines plug in through ``RecordHooks``; HTTP lives in ``web``.
"""
from __future__ import annotations

import re
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from engines import expressions as ex
from engines.errors import Conflict, NotFound, PermissionDenied, ValidationFailed, field_errors
from engines.field_types import REGISTRY, FieldValueError
from engines.model import Entity

from . import audit
from . import system_tables as st
from .bulk_insert import gc_paused, insert_rows
from .catalog import Catalog, CompiledApp
from .context import Context
from .ids import parse_id
from .permissions import Access, access_for, check_filter_paths, require, row_filter
from .record_query import (
    decode_cursor,
    encode_cursor,
    filter_clause,
    keyset_clause,
    order_by,
    page_params,
    sort_columns,
)
from .record_values import coerce_body, title_of, to_wire
from .shares import forget_record as forget_shares

MAX_BULK = 1000


@dataclass
class RecordCall:
    """One record going through the pipeline; hooks read and change it."""
    ctx: Context
    capp: CompiledApp
    entity: Entity
    op: str                                  # create | update | delete
    values: dict[str, Any]                   # the record as it will be stored (Python values)
    prev: dict[str, Any] | None = None       # the stored record before an update/delete
    written: set[str] = field(default_factory=set)
    errors: dict[str, list[str]] = field(default_factory=dict)
    trace: list[dict] = field(default_factory=list)
    record_id: int | None = None
    simulate: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def eval_ctx(self) -> ex.EvalContext:
        return ex.EvalContext(now=self.ctx.now, tz=self.capp.tz, prev=self.prev)


class RecordHooks:
    """What an engine may do inside the record pipeline. Every method is optional."""

    svc: RecordsService | None = None

    def bind(self, svc: RecordsService) -> None:
        """Called once by the service that runs this hook."""
        self.svc = svc

    def state_field(self, capp: CompiledApp, entity_key: str) -> str | None:
        return None

    def before_write(self, rc: RecordCall) -> None: ...

    def after_write(self, rc: RecordCall) -> None: ...

    def before_delete(self, rc: RecordCall) -> None: ...

    def after_delete(self, rc: RecordCall) -> None: ...

    def decorate(self, ctx: Context, capp: CompiledApp, entity_key: str, records: list[dict]) -> None: ...


class RecordsService:
    def __init__(self, catalog: Catalog, hooks: list[RecordHooks] | None = None):
        self.catalog = catalog
        self.hooks = list(hooks or [])
        for hook in self.hooks:
            hook.bind(self)

    # ------------------------------------------------------------------ helpers
    def app(self, ctx: Context, app_key: str) -> CompiledApp:
        return self.catalog.get(ctx.conn, app_key)

    def access(self, ctx: Context, capp: CompiledApp, entity_key: str) -> Access:
        capp.entity(entity_key)
        return access_for(ctx.actor, capp, entity_key)

    def _state_field(self, capp, entity_key):
        for h in self.hooks:
            sf = h.state_field(capp, entity_key)
            if sf:
                return sf
        return None

    def load_row(self, ctx: Context, capp: CompiledApp, entity_key: str, record_id: Any, *, scope: str = "all",
                 for_write: bool = False) -> dict:
        rid = parse_id(record_id)
        if rid is None:
            raise NotFound("No such record / 记录不存在", {"id": str(record_id)[:40]})
        table = capp.tables[entity_key]
        q = sa.select(table).where(table.c.id == rid)
        clause = row_filter(ctx.actor, capp, entity_key, scope, for_write=for_write)
        if clause is not None:
            q = q.where(clause)
        row = ctx.conn.execute(q).mappings().first()
        if row is None:
            raise NotFound("No such record / 记录不存在", {"id": rid})
        values = dict(row)
        self._load_subtables(ctx, capp, capp.entity(entity_key), [values])
        return values

    def _load_subtables(self, ctx, capp, entity: Entity, rows: list[dict]) -> None:
        subs = [f for f in entity.fields if f.type == "subtable"]
        if not subs or not rows:
            return
        ids = [r["id"] for r in rows]
        for f in subs:
            t = capp.subtables[(entity.key, f.key)]
            grouped: dict[int, list] = {i: [] for i in ids}
            for r in ctx.conn.execute(sa.select(t).where(t.c.parent_id.in_(ids)).order_by(t.c.parent_id, t.c._pos)).mappings():
                grouped[r["parent_id"]].append(dict(r))
            for r in rows:
                r[f.key] = grouped[r["id"]]

    def lookup_values(self, ctx: Context, capp: CompiledApp, entity: Entity, values: dict, names) -> dict:
        """Values of dotted paths (customer.industry) for expressions, fetched once per target."""
        out = dict(values)
        wanted: dict[str, set[str]] = {}
        for name in names:
            if "." in name:
                head, tail = name.split(".", 1)
                wanted.setdefault(head, set()).add(tail)
        for head, tails in wanted.items():
            f = entity.field(head)
            rid = values.get(head)
            row = None
            if f is not None and f.type == "lookup" and rid is not None:
                t = capp.tables[f.target]
                row = ctx.conn.execute(sa.select(t).where(t.c.id == rid)).mappings().first()
            for tail in tails:
                out[f"{head}.{tail}"] = None if row is None else row.get(tail)
        return out

    def evaluate(self, rc: RecordCall, text: str, *, expect=None, allow_prev: bool | None = None) -> Any:
        compiled = rc.capp.compile(text, rc.entity.key, expect=expect,
                                   allow_prev=rc.op == "update" if allow_prev is None else allow_prev)
        values = self.lookup_values(rc.ctx, rc.capp, rc.entity, rc.values, compiled.names)
        return compiled.evaluate(values, rc.eval_ctx())

    # ------------------------------------------------------------------ pipeline
    def _pipeline(self, rc: RecordCall) -> None:
        plan = pipeline_plan(rc.entity)
        if rc.op == "create":
            for f, value in plan["defaults"]:
                if f.key not in rc.written and rc.values.get(f.key) is None:
                    rc.values[f.key] = list(value) if isinstance(value, list) else value
            for f in plan["default_exprs"]:
                if f.key not in rc.written and rc.values.get(f.key) is None:
                    self._eval_into(rc, f, f.default_expression)
        formulas = formula_order(rc.entity)
        if formulas:
            self.compute_formulas(rc)
        for hook in self.hooks:
            hook.before_write(rc)
        if formulas:
            self.compute_formulas(rc)
        self._conditions(rc)

    def _eval_into(self, rc: RecordCall, f, text: str) -> None:
        try:
            value = self.evaluate(rc, text)
            rc.values[f.key] = _fit(f, value)
        except ex.EvalError as exc:
            rc.errors.setdefault(f.key, []).append(exc.message)

    def compute_formulas(self, rc: RecordCall) -> None:
        for f in formula_order(rc.entity):
            self._eval_into(rc, f, f.expression)

    def _conditions(self, rc: RecordCall) -> None:
        for f in pipeline_plan(rc.entity)["conds"]:
            visible = True
            if f.visible_if:
                visible = bool(self._cond(rc, f, f.visible_if))
            required = f.required or (bool(self._cond(rc, f, f.required_if)) if f.required_if else False)
            value = rc.values.get(f.key)
            if visible and required and (value is None or value == "" or value == []):
                rc.errors.setdefault(f.key, []).append("is required / 必填")
            if rc.op == "update" and f.readonly_if and f.key in rc.written and rc.prev is not None \
                    and rc.prev.get(f.key) != value:
                saved = rc.values
                rc.values = rc.prev
                try:
                    locked = bool(self._cond(rc, f, f.readonly_if))
                finally:
                    rc.values = saved
                if locked:
                    rc.errors.setdefault(f.key, []).append("is read-only now / 当前不可修改")

    def _cond(self, rc: RecordCall, f, text: str) -> Any:
        try:
            return self.evaluate(rc, text, expect=ex.BOOL)
        except ex.EvalError as exc:
            rc.errors.setdefault(f.key, []).append(exc.message)
            return False

    def _check_unique_and_links(self, ctx: Context, capp: CompiledApp, calls: list[RecordCall]) -> None:
        if not calls:
            return
        entity = calls[0].entity
        table = capp.tables[entity.key]
        owners = {rc.values.get("owner") for rc in calls if "owner" in rc.written and rc.values.get("owner") is not None}
        if owners:
            known = {r[0] for r in ctx.conn.execute(sa.select(st.users.c.id).where(st.users.c.id.in_(sorted(owners))))}
            for rc in calls:
                if "owner" in rc.written and rc.values.get("owner") not in known | {None}:
                    rc.errors.setdefault("owner", []).append(f"no user with id {rc.values['owner']} / 用户不存在")
        for f in entity.fields:
            if f.unique:
                seen: dict[Any, int] = {}
                for i, rc in enumerate(calls):
                    v = rc.values.get(f.key)
                    if v is None or (rc.prev is not None and rc.prev.get(f.key) == v):
                        continue
                    if v in seen:
                        rc.errors.setdefault(f.key, []).append("is already used by another record in this batch / 批内重复")
                    seen[v] = i
                if seen:
                    taken = set()
                    keys = list(seen)
                    for chunk in range(0, len(keys), 500):
                        taken |= {r[0] for r in ctx.conn.execute(
                            sa.select(table.c[f.key]).where(table.c[f.key].in_(keys[chunk:chunk + 500])))}
                    for v in taken:
                        rc = calls[seen[v]]
                        rc.errors.setdefault(f.key, []).append("is already used by another record / 该值已被使用")
            if f.type in ("lookup", "user"):
                ids = {rc.values.get(f.key) for rc in calls if rc.values.get(f.key) is not None
                       and (rc.prev is None or rc.prev.get(f.key) != rc.values.get(f.key))}
                if not ids:
                    continue
                target = capp.tables[f.target] if f.type == "lookup" else st.users
                q = sa.select(target.c.id).where(target.c.id.in_(sorted(ids)))
                if f.type == "lookup":
                    # a record the actor may not read is treated as one that does not exist
                    readable = row_filter(ctx.actor, capp, f.target,
                                          access_for(ctx.actor, capp, f.target).scope("read"))
                    if readable is not None:
                        q = q.where(readable)
                found = {r[0] for r in ctx.conn.execute(q)}
                for rc in calls:
                    v = rc.values.get(f.key)
                    if v is not None and v not in found and (rc.prev is None or rc.prev.get(f.key) != v):
                        what = f"{f.target} record" if f.type == "lookup" else "user"
                        rc.errors.setdefault(f.key, []).append(f"no {what} with id {v} / 关联记录不存在")

    # ------------------------------------------------------------------ create
    def create(self, ctx: Context, app_key: str, entity_key: str, body: Any, *, simulate: bool = False) -> dict:
        return self.create_many(ctx, app_key, entity_key, [body], single=True, simulate=simulate)[0]

    def prepare_create(self, ctx: Context, capp: CompiledApp, entity_key: str, body: Any,
                       access: Access, simulate: bool = False, *, state_field: Any = ...) -> RecordCall:
        """One record's create call, coerced and through the pipeline. Batch callers pass the
        entity's ``state_field`` (worked out once per batch)."""
        entity = capp.entity(entity_key)
        errors: dict[str, list[str]] = {}
        if state_field is ...:
            state_field = self._state_field(capp, entity_key)
        values = coerce_body(capp, entity, body, access, state_field=state_field,
                             may_set_owner=access.scope("update") == "all", errors=errors)
        rc = RecordCall(ctx, capp, entity, "create", values, written=set(values), errors=errors, simulate=simulate)
        rc.values.setdefault("owner", ctx.actor.id)
        rc.values.setdefault("created_by", ctx.actor.id)
        self._pipeline(rc)
        return rc

    def create_many(self, ctx: Context, app_key: str, entity_key: str, bodies: list, *, single: bool = False,
                    simulate: bool = False) -> list[dict]:
        capp = self.app(ctx, app_key)
        access = self.access(ctx, capp, entity_key)
        require(access, "create", capp.entity(entity_key).label)
        if not bodies:
            raise ValidationFailed("Nothing to create / 没有可创建的记录", {"_body": ["empty list"]})
        if len(bodies) > MAX_BULK and not simulate:
            raise ValidationFailed(f"At most {MAX_BULK} records at once / 一次最多 {MAX_BULK} 条", {"_body": ["too many"]})
        state_field = self._state_field(capp, entity_key)
        with nullcontext() if single else gc_paused():
            calls = [self.prepare_create(ctx, capp, entity_key, b, access, simulate, state_field=state_field)
                     for b in bodies]
            self._check_unique_and_links(ctx, capp, calls)
            self._raise_errors(calls, single)
            if simulate:
                return [rc.values for rc in calls]
            return self.write_created(ctx, capp, entity_key, calls, access)

    def _raise_errors(self, calls: list[RecordCall], single: bool) -> None:
        if single:
            if calls[0].errors:
                raise field_errors(calls[0].errors)
            return
        merged = {f"[{i}].{k}": v for i, rc in enumerate(calls) for k, v in rc.errors.items()}
        if merged:
            raise field_errors(merged, f"{sum(1 for rc in calls if rc.errors)} record(s) failed / 部分记录校验失败")

    def write_created(self, ctx: Context, capp: CompiledApp, entity_key: str, calls: list[RecordCall],
                      access: Access, *, audit_each: bool = True, answer: bool = True) -> list[dict]:
        entity = capp.entity(entity_key)
        table = capp.tables[entity_key]
        cols = set(table.c.keys())
        autos = [f for f in entity.fields if f.type == "autonumber"]
        for f in autos:
            numbers = next_numbers(ctx, capp, entity, f, len(calls))
            for rc, num in zip(calls, numbers, strict=True):
                rc.values[f.key] = num
        stamp = {"created_at": ctx.now, "updated_at": ctx.now, "created_by": ctx.actor.id,
                 "updated_by": ctx.actor.id, "_version": 1}
        # one statement for the whole batch; every row gets the same keys
        present: set[str] = set()
        for rc in calls:
            present.update(rc.values)
        keys = sorted((present & cols) - stamp.keys() - {"id", "owner"})
        rows = []
        for rc in calls:
            get = rc.values.get
            row = {k: get(k) for k in keys}
            row.update(stamp)
            row["owner"] = get("owner", ctx.actor.id)
            rows.append(row)
        try:
            ids = insert_rows(ctx.conn, table, rows)
        except IntegrityError as exc:
            raise Conflict("The record conflicts with another one (a unique value or a link) / 与已有记录冲突",
                           {"_body": [str(exc.orig).splitlines()[0][:200]]}) from exc
        for rc, rid, row in zip(calls, ids, rows, strict=True):
            rc.record_id = rid
            rc.values.update(stamp)
            rc.values["owner"] = row["owner"]
            rc.values["id"] = rid
        self._write_subtables(ctx, capp, entity, calls, replace=False)
        # one wire form per record serves the audit entry and the answer
        stamps: dict = {}
        wires = [to_wire(capp, entity, rc.values, stamps=stamps) for rc in calls] if (audit_each or answer) else []
        audit.write_many(ctx.conn, audit.create_entries(
            at=ctx.now, user_id=ctx.actor.id, app=capp.key, entity=entity_key,
            items=[(rc.record_id, f"created {title_of(entity, rc.values)}",
                    _created_values(wires[i]) if audit_each else None,
                    {"trace": rc.trace} if rc.trace else None) for i, rc in enumerate(calls)]))
        for rc in calls:
            for hook in self.hooks:
                hook.after_write(rc)
        if not answer:   # bulk callers (import) that do not send the records back
            return []
        if capp.app.flow_for(entity_key) or any(r.get("kind") == "automation" and r.get("entity") == entity_key
                                                 for r in capp.app.rules):
            # after-write effects (flow start, automations) may have changed the record again
            return self._wire_many(ctx, capp, entity_key, [rc.values for rc in calls], access)
        out = [{k: v for k, v in w.items() if k not in access.hidden} for w in wires] if access.hidden else wires
        for hook in self.hooks:
            hook.decorate(ctx, capp, entity_key, out)
        return out

    def _write_subtables(self, ctx, capp, entity, calls: list[RecordCall], *, replace: bool) -> None:
        for f in entity.fields:
            if f.type != "subtable":
                continue
            t = capp.subtables[(entity.key, f.key)]
            rows = []
            for rc in calls:
                if f.key not in rc.written and replace:
                    continue
                items = rc.values.get(f.key) or []
                if replace:
                    ctx.conn.execute(t.delete().where(t.c.parent_id == rc.record_id))
                for pos, item in enumerate(items):
                    rows.append({**{s.key: item.get(s.key) for s in f.fields}, "parent_id": rc.record_id, "_pos": pos})
            if rows:
                ctx.conn.execute(t.insert(), rows)

    # ------------------------------------------------------------------ read
    def _wire_many(self, ctx, capp, entity_key, rows: list[dict], access: Access, fields=None) -> list[dict]:
        entity = capp.entity(entity_key)
        subs = [f.key for f in entity.fields if f.type == "subtable"]
        if rows and subs and any(k not in rows[0] for k in subs):
            self._load_subtables(ctx, capp, entity, rows)
        stamps: dict = {}
        out = [to_wire(capp, entity, r, hidden=access.hidden, fields=fields, stamps=stamps) for r in rows]
        for hook in self.hooks:
            hook.decorate(ctx, capp, entity_key, out)
        return out

    def get(self, ctx: Context, app_key: str, entity_key: str, record_id: Any) -> dict:
        capp = self.app(ctx, app_key)
        access = self.access(ctx, capp, entity_key)
        scope = access.scope("read")
        if scope == "none":
            raise NotFound("No such record / 记录不存在", {"id": record_id})
        row = self.load_row(ctx, capp, entity_key, record_id, scope=scope)
        return self._wire_many(ctx, capp, entity_key, [row], access)[0]

    def list(self, ctx: Context, app_key: str, entity_key: str, *, filter: str | None = None,
             sort: str | None = None, page: Any = 1, page_size: Any = 50, fields: list[str] | None = None,
             cursor: str | None = None, search: str | None = None, op: str = "read") -> dict:
        capp = self.app(ctx, app_key)
        access = self.access(ctx, capp, entity_key)
        scope = require(access, op, capp.entity(entity_key).label)
        if op == "export":
            scope = min_scope(scope, access.scope("read"))
        table = capp.tables[entity_key]
        page, page_size = page_params(page, page_size)
        fields = self._check_fields(capp, entity_key, fields, access)
        where = self.where(ctx, capp, entity_key, scope, filter, access, search)
        order = sort_columns(capp, entity_key, sort, access.hidden)
        total = ctx.conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()
        q = sa.select(table).where(*where).order_by(*order_by(table, order)).limit(page_size + 1)
        if cursor:
            q = q.where(keyset_clause(table, order, decode_cursor(cursor)))
        else:
            q = q.offset((page - 1) * page_size)
        rows = [dict(r) for r in ctx.conn.execute(q).mappings()]
        more = len(rows) > page_size
        rows = rows[:page_size]
        items = self._wire_many(ctx, capp, entity_key, rows, access, fields) if rows else []
        out = {"items": items, "total": total, "page": page, "page_size": page_size}
        if more and rows:
            last = rows[-1]
            out["next"] = encode_cursor([_jsonable(last.get(k)) for k, _ in order])
        return out

    def iter_rows(self, ctx: Context, app_key: str, entity_key: str, *, filter=None, sort=None, fields=None,
                  batch: int = 1000):
        """Every matching record, in batches (exports); checks the export permission."""
        capp = self.app(ctx, app_key)
        access = self.access(ctx, capp, entity_key)
        scope = min_scope(require(access, "export", capp.entity(entity_key).label), access.scope("read"))
        fields = self._check_fields(capp, entity_key, fields, access)
        table = capp.tables[entity_key]
        where = self.where(ctx, capp, entity_key, scope, filter, access, None)
        order = sort_columns(capp, entity_key, sort, access.hidden)
        cursor = None
        while True:
            q = sa.select(table).where(*where).order_by(*order_by(table, order)).limit(batch)
            if cursor is not None:
                q = q.where(keyset_clause(table, order, cursor))
            rows = [dict(r) for r in ctx.conn.execute(q).mappings()]
            if not rows:
                return
            yield from self._wire_many(ctx, capp, entity_key, rows, access, fields)
            cursor = [_jsonable(rows[-1].get(k)) for k, _ in order]

    def where(self, ctx, capp, entity_key, scope, filter_text, access, search) -> list:
        where = []
        clause = row_filter(ctx.actor, capp, entity_key, scope)
        if clause is not None:
            where.append(clause)
        check_filter_paths(ctx.actor, capp, entity_key, filter_text)
        fc = filter_clause(capp, entity_key, filter_text, now=ctx.now, hidden=access.hidden) if filter_text else None
        if fc is not None:
            where.append(fc)
        if search:
            where.append(search_clause(capp, entity_key, search, access.hidden))
        return where

    def _check_fields(self, capp, entity_key, fields, access: Access):
        if not fields:
            return None
        entity = capp.entity(entity_key)
        known = set(entity.field_map) | {"id", "created_at", "updated_at", "created_by", "updated_by", "owner",
                                         "_version", "_tags"}
        bad = [f for f in fields if f not in known]
        if bad:
            raise ValidationFailed(f"Unknown field(s): {', '.join(bad)} / 未知字段", {"fields": bad})
        blocked = [f for f in fields if f in access.hidden]
        if blocked:
            raise PermissionDenied(f"You may not read {', '.join(blocked)} / 无权查看字段", {"fields": blocked})
        return list(fields)

    # ------------------------------------------------------------------ update
    def update(self, ctx: Context, app_key: str, entity_key: str, record_id: Any, body: Any, *,
               if_match: Any = None) -> dict:
        capp = self.app(ctx, app_key)
        access = self.access(ctx, capp, entity_key)
        entity = capp.entity(entity_key)
        read_scope = access.scope("read")
        if read_scope == "none":
            raise NotFound("No such record / 记录不存在", {"id": record_id})
        prev = self.load_row(ctx, capp, entity_key, record_id, scope=read_scope)
        scope = require(access, "update", entity.label)
        if scope != "all" and not _can_reach(self, ctx, capp, entity_key, record_id, scope):
            _deny("update")
        version = _parse_version(if_match)
        errors: dict[str, list[str]] = {}
        values = coerce_body(capp, entity, body, access, state_field=self._state_field(capp, entity_key),
                             may_set_owner=scope == "all", errors=errors)
        rc = RecordCall(ctx, capp, entity, "update", {**prev, **values}, prev=prev, written=set(values),
                        errors=errors, record_id=prev["id"])
        if version is not None and version != prev["_version"]:
            raise Conflict(f"The record was changed by someone else (version {prev['_version']}, you sent {version}) "
                           f"/ 记录已被他人修改", {"_version": prev["_version"]})
        self._pipeline(rc)
        self._check_unique_and_links(ctx, capp, [rc])
        self._raise_errors([rc], True)
        return self.write_updated(ctx, capp, rc, access)

    def write_updated(self, ctx: Context, capp: CompiledApp, rc: RecordCall, access: Access, *,
                      action: str = "update", summary: str | None = None, details: dict | None = None) -> dict:
        entity, prev = rc.entity, rc.prev
        table = capp.tables[entity.key]
        cols = set(table.c.keys()) - {"id", "created_at", "created_by", "_version"}
        changes = {k: rc.values.get(k) for k in cols if rc.values.get(k) != prev.get(k)}
        sub_changed = [f.key for f in entity.fields if f.type == "subtable" and f.key in rc.written]
        if changes or sub_changed or action != "update":
            changes.update(updated_at=ctx.now, updated_by=ctx.actor.id, _version=prev["_version"] + 1)
            res = ctx.conn.execute(table.update().where(table.c.id == prev["id"], table.c._version == prev["_version"])
                                   .values(**changes))
            if res.rowcount != 1:
                raise Conflict("The record was changed by someone else / 记录已被他人修改", {"_version": prev["_version"]})
            rc.values.update(changes)
            self._write_subtables(ctx, capp, entity, [rc], replace=True)
            before_w = to_wire(capp, entity, prev)
            after_w = to_wire(capp, entity, rc.values)
            diff_keys = [k for k in after_w if k not in ("updated_at", "_version", "updated_by")
                         and after_w.get(k) != before_w.get(k)]
            audit.write(ctx.conn, at=ctx.now, user_id=ctx.actor.id, action=action, app=capp.key, entity=entity.key,
                        record_id=prev["id"], summary=summary or f"changed {', '.join(diff_keys) or 'nothing'}",
                        before={k: before_w.get(k) for k in diff_keys}, after={k: after_w.get(k) for k in diff_keys},
                        details={**(details or {}), **({"trace": rc.trace} if rc.trace else {})} or None)
            for hook in self.hooks:
                hook.after_write(rc)
        return self._wire_many(ctx, capp, entity.key, [rc.values], access)[0]

    # ------------------------------------------------------------------ delete
    def delete(self, ctx: Context, app_key: str, entity_key: str, record_id: Any) -> None:
        capp = self.app(ctx, app_key)
        access = self.access(ctx, capp, entity_key)
        entity = capp.entity(entity_key)
        read_scope = access.scope("read")
        if read_scope == "none":
            raise NotFound("No such record / 记录不存在", {"id": record_id})
        prev = self.load_row(ctx, capp, entity_key, record_id, scope=read_scope)
        scope = require(access, "delete", entity.label)
        if scope != "all" and not _can_reach(self, ctx, capp, entity_key, record_id, scope, shares=False):
            _deny("delete")
        refs = self.references(ctx, capp, entity_key, prev["id"])
        if refs:
            raise Conflict(f"Other records link to this one: {', '.join(f'{n} {k}' for k, n in refs.items())} "
                           f"/ 仍有其他记录关联此记录", {"references": refs})
        rc = RecordCall(ctx, capp, entity, "delete", dict(prev), prev=prev, record_id=prev["id"])
        for hook in self.hooks:
            hook.before_delete(rc)
        if rc.errors:
            raise field_errors(rc.errors)
        table = capp.tables[entity_key]
        for f in entity.fields:
            if f.type == "subtable":
                t = capp.subtables[(entity_key, f.key)]
                ctx.conn.execute(t.delete().where(t.c.parent_id == prev["id"]))
        ctx.conn.execute(table.delete().where(table.c.id == prev["id"]))
        forget_shares(ctx.conn, capp.key, entity_key, prev["id"])
        audit.write(ctx.conn, at=ctx.now, user_id=ctx.actor.id, action="delete", app=capp.key, entity=entity_key,
                    record_id=prev["id"], summary=f"deleted {title_of(entity, prev)}",
                    before=_audit_values(to_wire(capp, entity, prev)))
        for hook in self.hooks:
            hook.after_delete(rc)

    def references(self, ctx: Context, capp: CompiledApp, entity_key: str, rid: int) -> dict[str, int]:
        refs: dict[str, int] = {}
        for other in capp.app.entities:
            for f in other.fields:
                if f.type == "lookup" and f.target == entity_key:
                    t = capp.tables[other.key]
                    n = ctx.conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c[f.key] == rid)).scalar_one()
                    if n:
                        refs[f"{other.key}.{f.key}"] = n
        return refs


def _can_reach(svc, ctx, capp, entity_key, record_id, scope, *, shares: bool = True) -> bool:
    table = capp.tables[entity_key]
    clause = row_filter(ctx.actor, capp, entity_key, scope, for_write=True, shares=shares)
    q = sa.select(table.c.id).where(table.c.id == int(record_id))
    if clause is not None:
        q = q.where(clause)
    return ctx.conn.execute(q).first() is not None


def _deny(op: str):
    raise PermissionDenied(f"You may not {op} this record / 无权操作此记录", {"operation": op})


def min_scope(a: str, b: str) -> str:
    order = ("none", "own", "team", "all")
    return a if order.index(a) < order.index(b) else b


def _parse_version(value: Any) -> int | None:
    if value in (None, ""):
        return None
    text = str(value).strip().strip('"')
    if text.startswith("W/"):
        text = text[2:].strip('"')
    if not re.fullmatch(r"\d{1,9}", text):
        raise ValidationFailed("If-Match must be the record's _version / If-Match 必须是记录版本号",
                               {"If-Match": ["must be a whole number"]})
    return int(text)


def _fit(f, value):
    """A computed value stored in its field's column type."""
    if value is None:
        return None
    if f.type == "formula" and (f.result_type or "number") == "number":
        try:
            return float(value) if not isinstance(value, bool) else float(value)
        except (TypeError, ValueError):
            return None
    if f.type == "formula" and f.result_type == "text":
        return str(value)
    if f.type not in ("formula", "rollup"):
        try:
            return REGISTRY[f.type].coerce(value, f)
        except FieldValueError:
            return None
    return value


# what the audit row itself says (record, when, who) or what is no value of the record
_NOT_CREATED_VALUES = frozenset({"id", "created_at", "updated_at", "created_by", "updated_by", "_version", "_tags"})


def _created_values(wire: dict) -> dict:
    """A create's audit after-values: the values the record was created with."""
    return {k: v for k, v in wire.items() if v is not None and v != [] and k not in _NOT_CREATED_VALUES}


def _audit_values(wire: dict) -> dict:
    values = dict(wire)
    values.pop("_tags", None)
    return values


def _jsonable(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value is not None and not isinstance(value, (int, float, str, bool)):
        return str(value)
    return value


def pipeline_plan(entity: Entity) -> dict:
    """What the pipeline needs of an entity's fields, worked out once per published entity."""
    plan = entity.__dict__.get("_pipeline_plan")
    if plan is None:
        defaults = []
        for f in entity.fields:
            if f.default is not None and not REGISTRY[f.type].computed and f.type != "subtable":
                try:
                    defaults.append((f, REGISTRY[f.type].coerce(f.default, f)))
                except FieldValueError:
                    pass
        plan = {
            "defaults": defaults,
            "default_exprs": [f for f in entity.fields if f.default_expression],
            "conds": [f for f in entity.fields if not REGISTRY[f.type].computed
                      and (f.required or f.visible_if or f.required_if or f.readonly_if)],
        }
        entity.__dict__["_pipeline_plan"] = plan
    return plan


def formula_order(entity: Entity):
    """The entity's formulas, each after those it uses (worked out once per compiled entity)."""
    cached = entity.__dict__.get("_formula_order")
    if cached is None:
        cached = entity.__dict__["_formula_order"] = _formula_order(entity)
    return cached


def _formula_order(entity: Entity):
    formulas = [f for f in entity.fields if f.type == "formula" and f.expression]
    if len(formulas) < 2:
        return formulas
    keys = {f.key for f in formulas}
    deps = {f.key: {k for k in keys if k != f.key and re.search(rf"(?<![\w.]){k}\b", f.expression)} for f in formulas}
    ordered, done = [], set()
    while len(ordered) < len(formulas):
        progress = False
        for f in formulas:
            if f.key not in done and deps[f.key] <= done:
                ordered.append(f)
                done.add(f.key)
                progress = True
        if not progress:   # a cycle (refused at save time); keep a stable order
            ordered += [f for f in formulas if f.key not in done]
            break
    return ordered


def next_numbers(ctx: Context, capp: CompiledApp, entity: Entity, f, count: int) -> list[str]:
    """``count`` fresh autonumbers; a counter row per period, incremented atomically."""
    fmt = f.format or "{000000}"
    local = ctx.now.astimezone(capp.tz)
    prefix_fmt = re.sub(r"\{0+\}", "#", fmt)
    period = (prefix_fmt.replace("{YYYY}", f"{local:%Y}").replace("{YY}", f"{local:%y}")
              .replace("{MM}", f"{local:%m}").replace("{DD}", f"{local:%d}"))
    name = f"{capp.key}:{entity.id}:{f.id}:{period}"[:200]
    c = st.counters
    if ctx.conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(c).values(name=name, value=count)
    stmt = stmt.on_conflict_do_update(index_elements=[c.c.name], set_={"value": c.c.value + count}).returning(c.c.value)
    last = ctx.conn.execute(stmt).scalar_one()
    width = len(m.group(0)) - 2 if (m := re.search(r"\{0+\}", fmt)) else 6
    return [re.sub(r"#", str(n).zfill(width), period, count=1) for n in range(last - count + 1, last + 1)]


def search_clause(capp: CompiledApp, entity_key: str, text: str, hidden=frozenset()):
    entity = capp.entity(entity_key)
    table = capp.tables[entity_key]
    term = str(text)[:200]
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    cols = [table.c[f.key] for f in entity.fields if f.type in ("text", "textarea", "email", "phone", "url",
                                                                 "autonumber", "select") and f.key not in hidden]
    if not cols:
        return sa.false()
    like = f"%{escaped}%"
    clauses = [col.ilike(like, escape="\\") for col in cols]
    if (rid := parse_id(term)) is not None:
        clauses.append(table.c.id == rid)
    return sa.or_(*clauses)
