"""Bulk import of a CSV/XLSX sheet into an entity, through the records pipeline, in batches.

Owns: resolving lookups by their record's title and users by name, dedupe by a unique field
(update or skip), dry run, the per-row error report, and the two modes: ``all_or_nothing`` (any bad row: nothing is
written, every error is reported) and ``skip_bad_rows``. Rows go in batches of 1000 through
``RecordsService.prepare_create`` + ``_check_unique_and_links`` + ``write_created`` (one INSERT
per batch), and dedupe updates through one executemany UPDATE per batch, all inside the caller's
one transaction: a process killed mid-import leaves nothing behind. Reading the file is
``runtime.import_files``'s, columns and cells ``runtime.import_mapping``'s; HTTP and the CLI are
``web``'s.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from engines.errors import JimuError, ValidationFailed
from engines.field_types import REGISTRY, FieldValueError
from engines.model import Entity

from . import audit
from . import system_tables as st
from .bulk_insert import gc_paused
from .catalog import CompiledApp
from .context import Context
from .import_files import Sheet
from .import_mapping import OWNER, converter, resolve_mapping
from .permissions import Access, require, row_filter
from .record_values import coerce_body, suggest, to_wire
from .records import RecordCall, RecordsService

BATCH = 1000
MAX_REPORTED_ERRORS = 10_000
ANALYZE_FIRST = 5_000          # PostgreSQL: refresh the table's statistics at 5k, 20k, 80k… new rows
MODES = ("all_or_nothing", "skip_bad_rows")
ON_DUPLICATE = ("update", "skip")


class ImportRefused(ValidationFailed):
    """An all-or-nothing import with bad rows: nothing was written; details is the report."""


@dataclass
class ImportOptions:
    mapping: dict[str, str | None] | None = None
    dedupe: str | None = None
    on_duplicate: str = "skip"
    mode: str = "all_or_nothing"
    dry_run: bool = False
    batch: int = BATCH


class _Run:
    def __init__(self, svc: RecordsService, ctx: Context, capp: CompiledApp, entity: Entity, access: Access,
                 columns: list[str], mapping: dict[int, str], opts: ImportOptions):
        self.svc, self.ctx, self.capp, self.entity, self.access = svc, ctx, capp, entity, access
        self.columns, self.mapping, self.opts = columns, mapping, opts
        self.table = capp.tables[entity.key]
        self.state_field = svc._state_field(capp, entity.key)
        self.column_of = {key: columns[i] for i, key in mapping.items()}
        self.created = self.updated = self.skipped = self.unchanged = self.bad_rows = self.rows = 0
        self.errors: list[dict] = []
        self.seen: dict[Any, int] = {}           # dedupe value -> the line that had it first
        self.dedupe = entity.field(opts.dedupe) if opts.dedupe else None
        self.readers = [(i, key, converter(entity.field(key) if key != "owner" else OWNER))
                        for i, key in sorted(mapping.items())]

    def error(self, line: int, field: str | None, message: str) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            item = {"line": line, "field": field, "message": message}
            if field in self.column_of:
                item["column"] = self.column_of[field]
            self.errors.append(item)

    def body(self, line: int, cells: list[Any]) -> dict | None:
        out: dict[str, Any] = {}
        extra = [c for c in cells[len(self.columns):] if c not in (None, "")]
        if extra:
            self.error(line, None, f"{len(cells)} cells but {len(self.columns)} columns / 单元格多于列数")
            return None
        n = len(cells)
        for i, key, read in self.readers:
            value = read(cells[i]) if i < n else None
            if value is not None:
                out[key] = value
        return out

    def resolve_refs(self, items: list[tuple[int, dict]]) -> list[tuple[int, dict]]:
        """Lookup cells holding a title and user cells holding a name become ids (one query per field)."""
        refs = [f for f in self.entity.fields if f.type in ("lookup", "user") and f.key in self.column_of.keys()]
        if "owner" in self.column_of:
            refs.append(OWNER)
        bad_lines: set[int] = set()
        for f in refs:
            names = {b[f.key] for _, b in items if isinstance(b.get(f.key), str) and not b[f.key].isdigit()}
            if not names:
                continue
            found: dict[str, list[int]] = {}
            if f.type == "user":
                q = sa.select(st.users.c.name, st.users.c.id).where(st.users.c.name.in_(sorted(names)))
            else:
                target = self.capp.entity(f.target)
                if not target.title_field:
                    continue
                t = self.capp.tables[f.target]
                q = sa.select(t.c[target.title_field], t.c.id).where(t.c[target.title_field].in_(sorted(names)))
                clause = row_filter(self.ctx.actor, self.capp, f.target, self.svc.access(
                    self.ctx, self.capp, f.target).scope("read"))
                if clause is not None:
                    q = q.where(clause)
            for name, rid in self.ctx.conn.execute(q):
                found.setdefault(name, []).append(rid)
            for line, b in items:
                v = b.get(f.key)
                if isinstance(v, str) and v in names:
                    ids = found.get(v, [])
                    if len(ids) == 1:
                        b[f.key] = ids[0]
                    else:
                        what = "user" if f.type == "user" else self.capp.entity(f.target).label
                        self.error(line, f.key, f"{'no' if not ids else 'more than one'} {what} named {v!r} "
                                                f"/ {'找不到' if not ids else '有多个'}名为 {v!r} 的记录")
                        bad_lines.add(line)
        return [(line, b) for line, b in items if line not in bad_lines]

    def batch(self, chunk: list[tuple[int, list[Any]]]) -> None:
        items = []
        for line, cells in chunk:
            b = self.body(line, cells)
            if b is None:
                self.bad_rows += 1
            else:
                items.append((line, b))
        good = self.resolve_refs(items)
        self.bad_rows += len(items) - len(good)
        creates, updates = self.split_duplicates(good)
        self.write_creates(creates)
        if updates:
            self.write_updates(updates)

    def split_duplicates(self, items):
        if self.dedupe is None:
            return items, []
        f = self.dedupe
        keyed: list[tuple[int, dict, Any]] = []
        for line, b in items:
            try:
                v = REGISTRY[f.type].coerce(b.get(f.key), f)
            except FieldValueError:
                v = None   # the pipeline reports it
            if v is not None and v in self.seen:
                if self.opts.on_duplicate == "skip":
                    self.skipped += 1
                else:
                    self.error(line, f.key, f"the same {f.label} as line {self.seen[v]} / 与第 {self.seen[v]} 行重复")
                    self.bad_rows += 1
                continue
            if v is not None:
                self.seen[v] = line
            keyed.append((line, b, v))
        values = [v for _, _, v in keyed if v is not None]
        existing: dict[Any, dict] = {}
        col = self.table.c[f.key]
        for i in range(0, len(values), 500):
            q = sa.select(self.table).where(col.in_(values[i:i + 500]))
            if self.ctx.conn.dialect.name == "postgresql" and self.opts.on_duplicate == "update":
                q = q.with_for_update()
            for row in self.ctx.conn.execute(q).mappings():
                existing[row[f.key]] = dict(row)
        creates, updates = [], []
        for line, b, v in keyed:
            if v is not None and v in existing:
                if self.opts.on_duplicate == "skip":
                    self.skipped += 1
                else:
                    updates.append((line, b, existing[v]))
            else:
                creates.append((line, b))
        return creates, updates

    def report_bad(self, pairs: list[tuple[int, RecordCall]]) -> list[tuple[int, RecordCall]]:
        good = []
        for line, rc in pairs:
            if rc.errors:
                self.bad_rows += 1
                for key, messages in rc.errors.items():
                    for m in messages:
                        self.error(line, key, m)
            else:
                good.append((line, rc))
        return good

    def write_creates(self, items: list[tuple[int, dict]]) -> None:
        pairs = []
        state_field = self.svc._state_field(self.capp, self.entity.key)
        for line, b in items:
            try:
                pairs.append((line, self.svc.prepare_create(self.ctx, self.capp, self.entity.key, b, self.access,
                                                            state_field=state_field)))
            except JimuError as exc:
                self.bad_rows += 1
                self.error(line, None, exc.message)
        self.svc._check_unique_and_links(self.ctx, self.capp, [rc for _, rc in pairs])
        good = self.report_bad(pairs)
        if good:
            self.svc.write_created(self.ctx, self.capp, self.entity.key, [rc for _, rc in good], self.access,
                                   answer=False, audit_each=False)
            self.created += len(good)

    def write_updates(self, items: list[tuple[int, dict, dict]]) -> None:
        scope = self.access.scope("update")
        reachable = None
        if scope != "all":
            ids = [row["id"] for _, _, row in items]
            q = sa.select(self.table.c.id).where(self.table.c.id.in_(ids),
                                                 row_filter(self.ctx.actor, self.capp, self.entity.key, scope,
                                                            for_write=True))
            reachable = {r[0] for r in self.ctx.conn.execute(q)}
        self.svc._load_subtables(self.ctx, self.capp, self.entity, [row for _, _, row in items])
        pairs = []
        for line, b, prev in items:
            if reachable is not None and prev["id"] not in reachable:
                self.bad_rows += 1
                self.error(line, self.dedupe.key, "the existing record is not yours to change / 无权修改已有记录")
                continue
            errors: dict[str, list[str]] = {}
            try:
                values = coerce_body(self.capp, self.entity, b, self.access, state_field=self.state_field,
                                     may_set_owner=scope == "all", errors=errors)
            except JimuError as exc:
                self.bad_rows += 1
                self.error(line, None, exc.message)
                continue
            rc = RecordCall(self.ctx, self.capp, self.entity, "update", {**prev, **values}, prev=prev,
                            written=set(values), errors=errors, record_id=prev["id"])
            self.svc._pipeline(rc)
            pairs.append((line, rc))
        self.svc._check_unique_and_links(self.ctx, self.capp, [rc for _, rc in pairs])
        good = self.report_bad(pairs)
        if good:
            self.bulk_update([rc for _, rc in good])

    def bulk_update(self, calls: list[RecordCall]) -> None:
        """One executemany UPDATE for the batch, audit entries in one INSERT, then the after-hooks."""
        ctx, table, entity = self.ctx, self.table, self.entity
        cols = [c for c in table.c.keys() if c not in ("id", "created_at", "created_by", "_version",
                                                        "updated_at", "updated_by")]
        changed_calls, changed_cols = [], set()
        for rc in calls:
            diff = {k for k in cols if rc.values.get(k) != rc.prev.get(k)}
            if diff:
                changed_calls.append(rc)
                changed_cols |= diff
            else:
                self.unchanged += 1
                self.skipped += 1
        if not changed_calls:
            return
        keys = sorted(changed_cols)
        stmt = table.update().where(table.c.id == sa.bindparam("b_id")).values(
            {**{k: sa.bindparam(f"b_{k}") for k in keys}, "updated_at": sa.bindparam("b_updated_at"),
             "updated_by": sa.bindparam("b_updated_by"), "_version": sa.bindparam("b_version")})
        params = []
        for rc in changed_calls:
            rc.values.update(updated_at=ctx.now, updated_by=ctx.actor.id, _version=rc.prev["_version"] + 1)
            params.append({**{f"b_{k}": rc.values.get(k) for k in keys}, "b_id": rc.prev["id"],
                           "b_updated_at": ctx.now, "b_updated_by": ctx.actor.id, "b_version": rc.values["_version"]})
        ctx.conn.execute(stmt, params)
        entries = []
        for rc in changed_calls:
            before_w = to_wire(self.capp, entity, rc.prev)
            after_w = to_wire(self.capp, entity, rc.values)
            diff_keys = [k for k in after_w if k not in ("updated_at", "_version", "updated_by")
                         and after_w.get(k) != before_w.get(k)]
            entries.append(audit.entry(at=ctx.now, user_id=ctx.actor.id, action="update", app=self.capp.key,
                                       entity=entity.key, record_id=rc.prev["id"],
                                       summary=f"changed {', '.join(diff_keys) or 'nothing'}",
                                       before={k: before_w.get(k) for k in diff_keys},
                                       after={k: after_w.get(k) for k in diff_keys},
                                       details={"source": "import", **({"trace": rc.trace} if rc.trace else {})}))
        audit.write_many(ctx.conn, entries)
        for rc in changed_calls:
            for hook in self.svc.hooks:
                hook.after_write(rc)
        self.updated += len(changed_calls)


def _chunks(rows: Iterator[tuple[int, list[Any]]], size: int):
    chunk = []
    for item in rows:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def check_options(opts: ImportOptions, entity: Entity) -> None:
    errors: dict[str, list[str]] = {}
    if opts.mode not in MODES:
        errors["mode"] = [f"must be one of {', '.join(MODES)} / 模式无效"]
    if opts.on_duplicate not in ON_DUPLICATE:
        errors["on_duplicate"] = ["must be update or skip / 必须是 update 或 skip"]
    if opts.dedupe:
        f = entity.field(opts.dedupe)
        if f is None or not f.unique:
            errors["dedupe"] = [f"must be a unique field of {entity.key} / 必须是唯一字段"
                                + suggest(opts.dedupe, [x.key for x in entity.fields if x.unique])]
    if not isinstance(opts.batch, int) or not 1 <= opts.batch <= 5000:
        errors["batch"] = ["must be 1–5000"]
    if errors:
        raise ValidationFailed("Invalid import options / 导入选项无效", errors)


def run_import(svc: RecordsService, ctx: Context, app_key: str, entity_key: str, sheet: Sheet,
               opts: ImportOptions, progress: Callable[[int], None] | None = None) -> dict:
    """Import the sheet's rows; answers {"created", "updated", "skipped", "errors", ...}.

    Runs inside ``ctx``'s transaction. A dry run writes inside a savepoint that is rolled back; an
    all-or-nothing import with a bad row raises ``ImportRefused`` (the caller's transaction then
    rolls back everything).
    """
    capp = svc.app(ctx, app_key)
    entity = capp.entity(entity_key)
    access = svc.access(ctx, capp, entity_key)
    require(access, "create", entity.label)
    check_options(opts, entity)
    if opts.dedupe and opts.on_duplicate == "update":
        require(access, "update", entity.label)
    mapping = resolve_mapping(capp, entity, sheet.columns, opts.mapping, access, svc._state_field(capp, entity_key))
    if opts.dedupe and opts.dedupe not in mapping.values():
        raise ValidationFailed(f"The dedupe field {opts.dedupe} has no column / 去重字段没有对应的列",
                               {"dedupe": ["not mapped"]})
    run = _Run(svc, ctx, capp, entity, access, sheet.columns, mapping, opts)
    savepoint = ctx.conn.begin_nested() if opts.dry_run else None
    next_analyze = ANALYZE_FIRST
    try:
        for chunk in _chunks(sheet.rows, opts.batch):
            run.rows += len(chunk)
            with gc_paused():
                run.batch(chunk)
            if run.created >= next_analyze and ctx.conn.dialect.name == "postgresql":
                # the table may have been analysed while (nearly) empty: without fresh statistics the
                # planner would check the next batches' unique values by scanning the growing table
                ctx.conn.exec_driver_sql(f'ANALYZE "{run.table.name}"')   # a generated table name
                next_analyze *= 4
            if progress is not None:
                progress(run.rows)
    finally:
        if savepoint is not None and savepoint.is_active:
            savepoint.rollback()
    report = _report(run, sheet, opts)
    if run.bad_rows and opts.mode == "all_or_nothing" and not opts.dry_run:
        raise ImportRefused(f"{run.bad_rows} bad row(s): nothing was imported / {run.bad_rows} 行有误，未导入任何数据",
                            report)
    if not opts.dry_run:
        audit.write(ctx.conn, at=ctx.now, user_id=ctx.actor.id, action="import", app=capp.key, entity=entity.key,
                    summary=f"imported {report['created']} new, {report['updated']} changed, "
                            f"{report['skipped']} skipped, {run.bad_rows} bad of {run.rows} rows",
                    details={k: report[k] for k in ("created", "updated", "skipped", "rows", "mapping", "mode")})
    return report


def _report(run: _Run, sheet: Sheet, opts: ImportOptions) -> dict:
    refused = bool(run.bad_rows) and opts.mode == "all_or_nothing"
    return {"created": 0 if refused else run.created, "updated": 0 if refused else run.updated,
            "skipped": 0 if refused else run.skipped, "errors": run.errors,
            "error_rows": run.bad_rows, "rows": run.rows, "valid_rows": run.rows - run.bad_rows,
            "unchanged": 0 if refused else run.unchanged, "dry_run": opts.dry_run, "mode": opts.mode,
            "imported": not refused and not opts.dry_run,
            "mapping": {run.columns[i]: k for i, k in sorted(run.mapping.items())},
            "ignored_columns": [c for i, c in enumerate(run.columns) if c and i not in run.mapping],
            "encoding": sheet.encoding, "kind": sheet.kind}
