"""Uninstalling an app while keeping its data: a plan first, then export, verify and remove.

``plan_uninstall`` answers what an uninstall would remove (the app's metadata, its record tables
with their row counts, its timers, tasks, approvals, unsent outbox items, shares, saved views,
public form tokens, counters…: ``runtime.app_removal``), what stays (the audit log, the delivery
log), what the export holds, and every reason it would be refused; it writes nothing.

``uninstall_app`` does it inside the caller's transaction: it locks the app, writes the full export
(``templates_library.archive``: the app as a pack, every record as ``data/*.csv``, every table as
stored under ``archive/``) to the folder or .zip the caller names, reads it back and checks it (a
valid pack, its data as written, every file there), and only then drops the tables and removes
the app; the uninstall itself is written to the audit log. Any failure removes what it wrote and
raises, so that the caller's rollback leaves the app fully installed. Platform admins only.
Re-importing the export (``import_pack`` with its sample data) brings the app and its records back.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from builder import store
from builder.validation import validate_app
from engines.errors import Conflict, DefinitionError, NotFound, ValidationFailed
from engines.model import App
from runtime import audit
from runtime import system_tables as st
from runtime.app_removal import lock_app, removal_plan, remove_app, require_admin
from runtime.context import Context

from .archive import FullExport, full_export, write_full_export
from .loader import MAX_SAMPLE_ROWS, load_pack
from .pack_files import MAX_TOTAL_BYTES, PackFileError, open_pack_files
from .sample_data import check_sample_data, engine_set_fields

APP_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
SYSTEM_FIELDS_NOTE = ("id, owner, created_at/by and updated_at/by are set anew by the import; "
                      "their old values are in archive/ / 系统字段由导入重新设置，原值保存在 archive/ 中")


def _known_key(app_key: Any) -> str:
    if not isinstance(app_key, str) or not APP_KEY.match(app_key):
        raise NotFound("No such app / 应用不存在", {"app": "malformed"})
    return app_key


# ---------------------------------------------------------------------- the export target
def target_problem(path: Path) -> tuple[str, str] | None:
    """Why the export cannot go to ``path`` as (``conflict`` | ``invalid``, message), or None."""
    if path.is_symlink() and not path.exists():
        return "invalid", f"{path} is a broken link / 目标是无效的链接"
    if path.is_dir():
        if any(path.iterdir()):
            return "conflict", f"{path} exists and is not empty / 导出目标已存在且非空"
        writable = os.access(path, os.W_OK | os.X_OK)
    elif path.exists():
        if not path.is_file() or path.suffix.lower() != ".zip":
            return "invalid", f"{path} exists and is not a folder or a .zip / 导出目标不是文件夹或 .zip"
        if path.stat().st_size:
            return "conflict", f"{path} exists and is not empty / 导出目标已存在且非空"
        writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)
    else:
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            return "invalid", f"{parent} is not a folder / {parent} 不是文件夹"
        writable = os.access(parent, os.W_OK | os.X_OK)
    if not writable:
        return "invalid", f"{path} is not writable / 导出目标不可写"
    return None


def _refuse_target(path: Path) -> None:
    problem = target_problem(path)
    if problem is not None:
        kind, message = problem
        if kind == "conflict":
            raise Conflict(f"Cannot export to {path}: {message}; nothing was changed / 未做任何更改",
                           {"export": [message]})
        raise ValidationFailed(f"Cannot export to {path}: {message}; nothing was changed / 未做任何更改",
                               {"export": [message]})


def server_export_path(data_dir: str | Path, app_key: str, now: datetime) -> Path:
    """A fresh ``exports/APP-YYYYMMDDTHHMMSSZ.zip`` in the instance's data folder."""
    folder = Path(data_dir) / "exports"
    stem = f"{_known_key(app_key)}-{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    path, n = folder / f"{stem}.zip", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.zip"
    return path


# ---------------------------------------------------------------------- plan
def _not_carried(conn, app_key: str) -> dict:
    """What ``data/*.csv`` cannot carry, by entity (recomputed by the import, or kept in archive/)."""
    latest = store.latest_revision(conn, app_key)
    if latest is None:
        return {}
    app = App.from_dict(latest[1])
    return {e.key: sorted(engine_set_fields(app, e)) for e in app.entities if engine_set_fields(app, e)}


def plan_uninstall(ctx: Context, app_key: str, target: str | Path | None = None) -> dict:
    """What uninstalling ``app_key`` would remove and keep, and where its export would go; writes
    nothing. ``errors`` lists every reason the uninstall would be refused."""
    require_admin(ctx)
    plan = removal_plan(ctx.conn, _known_key(app_key))
    errors: list[dict] = []
    if target is not None:
        problem = target_problem(Path(target))
        if problem is not None:
            errors.append({"location": "export", "message": problem[1]})
    for entity, n in plan["records"].items():
        if n > MAX_SAMPLE_ROWS:
            errors.append({"location": f"records.{entity}",
                           "message": f"{n:,} records: a pack holds at most {MAX_SAMPLE_ROWS:,} per entity / "
                                      f"记录数超过模板包上限"})
    plan["export"] = {
        "target": None if target is None else str(target),
        "holds": "pack.yaml, data/*.csv (every record, lookups as row numbers), archive/*.csv "
                 "(every table as stored) / 模板包、全部记录数据及原始表存档",
        "recomputed_on_import": _not_carried(ctx.conn, app_key),
        "system_fields": SYSTEM_FIELDS_NOTE,
    }
    plan["errors"] = errors
    return plan


# ---------------------------------------------------------------------- verify
def _problem(problems: list[dict], location: str, message: str) -> None:
    if len(problems) < 50:
        problems.append({"location": location, "message": message})


def _first_difference(written: list[dict], read: list[dict] | None) -> str:
    read = read or []
    for n, (a, b) in enumerate(zip(written, read, strict=False), 1):
        if a != b:
            column = next((k for k in a if a.get(k) != b.get(k)), "")
            return f"row {n}, column {column}: {a.get(column, '')[:60]!r} reads back as {b.get(column, '')[:60]!r}"
    return f"{len(written)} rows written, {len(read)} read back"


def verify_export(path: Path, export: FullExport, plan: dict, now: datetime) -> dict:
    """Read the written export back and check it; raises ``DefinitionError`` listing every problem."""
    problems: list[dict] = []
    pack = export.pack
    try:
        loaded = load_pack(path, now=now)
    except DefinitionError as exc:
        raise DefinitionError(f"The export does not read back as a pack; nothing was removed / "
                              f"导出内容无法作为模板包读取，应用未卸载: {exc.message}", exc.details) from exc
    if (loaded.name, loaded.version, loaded.app) != (pack.name, pack.version, pack.app):
        _problem(problems, "pack.yaml", "does not read back as written / 读取结果与写入不一致")
    for entity in sorted(set(pack.sample_data) | set(loaded.sample_data)):
        if pack.sample_data.get(entity) != loaded.sample_data.get(entity):
            _problem(problems, f"data/{entity}.csv",
                     _first_difference(pack.sample_data.get(entity, []), loaded.sample_data.get(entity)))
    app_errors = validate_app(loaded.app)
    for e in app_errors:
        _problem(problems, f"pack.yaml: app.{e.get('location')}", e.get("message", ""))
    if not app_errors:
        for e in check_sample_data(loaded.app, loaded.sample_data, loaded.sample_files):
            _problem(problems, e["location"], e["message"])
    try:
        with open_pack_files(path) as files:
            names = set(files.names())
            for rel, data in export.files.items():
                if rel not in names or files.read(rel, MAX_TOTAL_BYTES) != data:
                    _problem(problems, rel, "missing or not as written / 文件缺失或与写入不一致")
    except PackFileError as exc:
        _problem(problems, exc.location, exc.message)
    for t in export.tables:
        data = export.files.get(f"archive/{t['table']}.csv", b"")
        rows = sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8-sig")))) - 1
        if rows != t["rows"]:
            _problem(problems, f"archive/{t['table']}.csv", f"{rows} rows for {t['rows']} records / 行数不符")
    if problems:
        raise DefinitionError(f"The export could not be verified; nothing was removed / 导出未通过校验，应用未卸载: "
                              f"{problems[0]['location']}: {problems[0]['message']}", problems)
    out = {"path": str(path), "format": "zip" if path.suffix.lower() == ".zip" else "folder",
           "pack": {"name": pack.name, "version": pack.version},
           "records": {e: len(rows) for e, rows in pack.sample_data.items()},
           "archive": sorted(export.files)}
    if path.is_file():
        out["bytes"] = path.stat().st_size
        out["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def archive_only(conn, export: FullExport, plan: dict) -> list[dict]:
    """Values that ``data/*.csv`` does not carry and only ``archive/`` keeps: records without a
    value an import takes, lookups that cannot load in order, retired fields and entities."""
    out: list[dict] = []
    app = App.from_dict(export.pack.app)
    for t in export.tables:
        if t["retired"] and t["rows"]:
            out.append({"table": t["table"], "entity": t["entity"], "records": t["rows"],
                        "why": "retired entity / 已停用的实体"})
        if t["kind"] != "entity" or t["retired"] or app.entity(t["entity"]) is None:
            continue
        rows = export.pack.sample_data.get(t["entity"], [])
        if t["rows"] > len(rows):
            out.append({"entity": t["entity"], "records": t["rows"] - len(rows),
                        "why": "no value an import takes / 没有可导入的值"})
        for f in app.entity(t["entity"]).fields:
            if f.type != "lookup":
                continue
            col = sa.column(f.key)
            stored = conn.execute(sa.select(sa.func.count()).select_from(sa.table(t["table"], col))
                                  .where(col.is_not(None))).scalar_one()
            carried = sum(1 for r in rows if r.get(f.key))
            if stored > carried:
                out.append({"entity": t["entity"], "field": f.key, "values": stored - carried,
                            "why": "lookups that cannot load in order (a cycle) / 循环关联无法按顺序导入"})
    retired = plan["rows"].get("retired_columns", 0)
    if retired:
        out.append({"retired_fields": retired, "why": "retired fields / 已停用的字段"})
    return out


# ---------------------------------------------------------------------- uninstall
def _missing_parents(path: Path) -> list[Path]:
    """The folders above ``path`` that do not exist yet, deepest first (writing creates them)."""
    out = []
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        out.append(parent)
        parent = parent.parent
    return out


def _cleanup(path: Path, existed: bool, made: list[Path]) -> None:
    """Remove what the export wrote (and the folders it made); a target that existed (empty) is left
    empty."""
    try:
        if path.is_dir() and not path.is_symlink():
            if existed:
                for child in path.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
            else:
                shutil.rmtree(path)
        elif path.exists():
            if existed:
                path.write_bytes(b"")
            else:
                path.unlink()
        for folder in made:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    except OSError:
        pass    # the uninstall is refused either way; a half-written export is not a pack


def uninstall_app(ctx: Context, catalog, app_key: str, target: str | Path, *,
                  default_tz: str = "Asia/Shanghai", export_sha256: str | None = None) -> dict:
    """Export ``app_key`` to ``target`` (a folder, or a .zip), verify the export, then remove the app,
    all inside the caller's transaction. ``export_sha256``, when given, must be the SHA-256 of the
    export (a zip) as written: a caller who downloaded it before proves the data did not change since.
    Raises on any problem; nothing is removed unless everything succeeded."""
    require_admin(ctx)
    app_key = _known_key(app_key)
    conn = ctx.conn
    lock_app(conn, app_key)
    target = Path(target)
    _refuse_target(target)
    plan = plan_uninstall(ctx, app_key, target)
    if plan["errors"]:
        first = plan["errors"][0]
        raise ValidationFailed(f"Cannot uninstall {app_key}: {first['message']}; nothing was changed / 未做任何更改",
                               {e["location"]: [e["message"]] for e in plan["errors"]})
    grants = [{"user": r.name, "role": r.role} for r in conn.execute(
        sa.select(st.users.c.name, st.app_roles.c.role).join(st.users, st.users.c.id == st.app_roles.c.user_id)
        .where(st.app_roles.c.app == app_key).order_by(st.users.c.name, st.app_roles.c.role))]
    export = full_export(conn, app_key, default_tz=default_tz)
    existed, made = target.exists(), _missing_parents(target)
    try:
        try:
            path = write_full_export(export, target)
            info = verify_export(path, export, plan, ctx.now)
        except OSError as exc:
            raise Conflict(f"Writing the export to {target} failed ({exc.strerror or exc}); nothing was removed / "
                           f"导出写入失败，应用未卸载", {"export": [str(exc.strerror or exc)]}) from exc
        if export_sha256 is not None and info.get("sha256") != export_sha256.strip().lower():
            raise Conflict("The data changed since the export was downloaded (or another file was named): download "
                           "it again / 导出下载后数据已变化，请重新下载导出",
                           {"export_sha256": ["does not match the export / 与导出不一致"]})
        info["archive_only"] = archive_only(conn, export, plan)
        try:
            removed = remove_app(ctx, app_key)
        except sa.exc.SQLAlchemyError as exc:
            # e.g. a lock that could not be had: the caller's rollback puts everything back
            raise Conflict(f"Removing {app_key} failed ({exc.__class__.__name__}); nothing was removed, try again / "
                           f"卸载失败，应用未删除，请重试", {"app": app_key}) from exc
        audit.write(conn, at=ctx.now, user_id=ctx.actor.id, action="metadata", app=app_key,
                    summary=f"uninstalled app {app_key}; data exported to {info['path']}",
                    details={"by": ctx.actor.name, "export": info, "records": plan["records"],
                             "tables": [{k: t[k] for k in ("table", "entity", "rows", "retired")}
                                        for t in plan["tables"]],
                             "removed": removed, "app_roles": grants, "pack": plan["pack"]})
    except BaseException:
        _cleanup(target, existed, made)
        catalog.forget(app_key)
        raise
    catalog.forget(app_key)
    plan.pop("errors")
    return {"app": app_key, "plan": plan, "export": info, "removed": removed}
