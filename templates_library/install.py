"""Installing template packs: plan, import (install or upgrade), and the built-in library.

``plan_pack`` answers what an import would do — created, changed and conflicting items, the
schema migrations it implies, the data it would retire, and every problem of the pack, located —
and writes nothing. ``import_pack`` applies the plan inside the caller's transaction: the app is
created (or its draft upgraded by the three-way merge of ``templates_library.upgrade``), published
and marked as installed from the pack; then the sample data goes through the records pipeline
(rules and flows run as on a POST), in load order, lookups mapped from row numbers to the new ids.
Any failure raises, and the caller's rollback leaves nothing behind. ``install_builtin_packs``
installs the shipped library for ``jimu demo``. The way back, ``export_app``, lives in
``templates_library.export`` (and is importable from here too).

Packs are data: the app metadata is validated like any other (``builder.validation``); nothing in a
pack is ever run as code. HTTP and the command line live in ``web``.
"""
from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from importlib import metadata as pkg_metadata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from builder import store
from builder.validation import validate_app
from engines.errors import Conflict, DefinitionError, JimuError, ValidationFailed
from engines.model import App
from runtime import audit
from runtime import publish as pub
from runtime import system_tables as st
from runtime.context import SYSTEM, Context

from .export import export_app, strip_ids
from .loader import MANIFEST, Pack, list_builtin_packs, load_pack
from .sample_data import bodies_for, check_sample_data, resolve_self
from .upgrade import merge_apps

__all__ = ["export_app", "import_pack", "install_builtin_packs", "plan_pack", "referenced_teams", "strip_ids"]

SECTIONS = ("forms", "rules", "flows", "calendars", "reports", "dashboards", "permissions")
BATCH = 500
_TEAM_REF = re.compile(r"\bteam:([a-z][a-z0-9_]{0,39})\b")
_VERSION_SPEC = re.compile(r"^\s*(==|!=|>=|<=|~=|>|<)?\s*([0-9]+(?:\.[0-9]+){0,2})\s*$")


# ---------------------------------------------------------------------- helpers
def version_tuple(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in str(text).split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def jimu_version() -> str:
    try:
        return pkg_metadata.version("jimu")
    except pkg_metadata.PackageNotFoundError:
        return "0.1.0"


def requirement_errors(requires: dict[str, str]) -> list[dict]:
    spec = (requires or {}).get("jimu")
    if not spec:
        return []
    have = version_tuple(jimu_version())
    for part in spec.split(","):
        m = _VERSION_SPEC.match(part)
        if m is None:
            continue
        op, want = m.group(1) or "==", version_tuple(m.group(2))
        ok = {"==": have == want, "!=": have != want, ">=": have >= want, "<=": have <= want,
              ">": have > want, "<": have < want, "~=": have >= want and have[:1] == want[:1]}[op]
        if not ok:
            return [{"location": f"{MANIFEST}: requires.jimu",
                     "message": f"the pack needs Jimu {spec}; this is Jimu {jimu_version()} / "
                                f"模板包需要 Jimu {spec}，当前版本为 {jimu_version()}"}]
    return []


def referenced_teams(doc: Any) -> list[str]:
    """The team keys that rules and flows route to or notify (``team:KEY``), in order of use."""
    found: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, str):
            for key in _TEAM_REF.findall(x):
                if key not in found:
                    found.append(key)

    for section in ("rules", "flows"):
        walk((doc or {}).get(section))
    return found


def builtin_pack_path(name: str) -> Path | None:
    return next((p for p in list_builtin_packs() if p.name == name), None)


def _located(errors: list[dict], prefix: str) -> list[dict]:
    out = []
    for e in errors:
        loc = e.get("location") or "$"
        out.append({**e, "location": prefix if loc == "$" else f"{prefix}.{loc}"})
    return out


def _created_items(doc: dict) -> list[dict]:
    items: list[dict] = [{"kind": "app", "key": doc.get("app"), "label": doc.get("label")}]
    for e in doc.get("entities") or []:
        items.append({"kind": "entity", "key": e.get("key"), "label": e.get("label"),
                      "fields": [f.get("key") for f in e.get("fields") or []]})
    for section in SECTIONS:
        for item in doc.get(section) or []:
            key = (f"{item.get('role')}:{item.get('entity')}" if section == "permissions" else item.get("key"))
            items.append({"kind": section[:-1], "key": key})
    return items


def _retired(ops: list[dict]) -> list[dict]:
    out = []
    for op in ops:
        if op["op"] == "retire_column":
            out.append({"kind": "field", "entity": op["entity"], "field": op["column"],
                        "note": "column hidden, data kept (restorable) / 字段停用，数据保留"})
        elif op["op"] == "retire_table":
            out.append({"kind": "entity", "entity": op["entity"],
                        "note": "table hidden, data kept (restorable) / 实体停用，数据保留"})
    return out


# ---------------------------------------------------------------------- plan
def _plan(conn: Connection, pack: Pack) -> tuple[dict, dict | None]:
    """The plan, and the metadata the import would store (None when refused)."""
    doc = pack.app
    key = doc.get("app") if isinstance(doc, dict) else None
    plan: dict[str, Any] = {"app": key, "pack": {"name": pack.name, "version": pack.version, "title": pack.title},
                            "action": "install", "installed": None, "created": [], "changed": [],
                            "conflicts": [], "migrations": [], "retired": [], "teams": referenced_teams(doc),
                            "sample_data": {e: len(rows) for e, rows in pack.sample_data.items()}, "errors": []}
    errors = plan["errors"]
    errors += requirement_errors(pack.requires)
    app_errors = validate_app(doc)
    errors += _located(app_errors, f"{MANIFEST}: app")
    if not app_errors:
        errors += check_sample_data(doc, pack.sample_data, pack.sample_files)
    if not isinstance(key, str):
        return plan, None
    exists = store.app_exists(conn, key)
    if exists:
        info = store.pack_info(conn, key)
        plan["installed"] = {"name": info["name"], "version": info["version"]} if info else None
        if info is None or info["name"] != pack.name:
            plan["action"] = "conflict"
            what = f"from pack {info['name']!r}" if info else "by hand (not from a pack)"
            errors.append({"location": f"{MANIFEST}: app.app",
                           "message": f"an app {key!r} exists already, installed {what}; only an upgrade of the "
                                      f"same pack may replace it / 应用 {key!r} 已存在且不是由此模板包安装的"})
            return plan, None
        if version_tuple(pack.version) < version_tuple(info["version"]):
            plan["action"] = "conflict"
            errors.append({"location": f"{MANIFEST}: version",
                           "message": f"version {pack.version} is older than the installed {info['version']}; "
                                      f"downgrades are refused / 不能降级：已安装版本 {info['version']} 更新"})
            return plan, None
        plan["action"] = "upgrade"
    if app_errors:
        return plan, None
    if exists:
        local = store.get_draft(conn, key)
        merged = merge_apps(info["base"] or {}, local, doc)
        plan["created"] = merged.created
        plan["changed"] = merged.changed + [{**r, "change": "removed"} for r in merged.removed]
        plan["conflicts"] = merged.conflicts
        merge_errors = validate_app(merged.doc)
        errors += _located(merge_errors, "app (merged with local changes)")
        if merge_errors:
            return plan, None
        target = store.assign_ids(merged.doc, local)
    else:
        plan["created"] = _created_items(doc)
        target = store.assign_ids(doc, None)
    if errors:
        return plan, None
    migration = pub.make_plan(conn, key, target)
    plan["migrations"] = migration["steps"]
    plan["retired"] = _retired(migration["operations"])
    return plan, target


def plan_pack(conn: Connection, pack: Pack) -> dict:
    """What importing ``pack`` would do; writes nothing. ``errors`` lists every problem, located."""
    return _plan(conn, pack)[0]


# ---------------------------------------------------------------------- import
def _refuse(plan: dict) -> None:
    details = plan["errors"]
    if plan["action"] == "conflict":
        raise Conflict(f"Cannot import pack {plan['pack']['name']} / 无法导入模板包: {details[0]['message']}",
                       details)
    first = details[0]
    more = f" (+{len(details) - 1} more / 另有 {len(details) - 1} 处)" if len(details) > 1 else ""
    raise DefinitionError(f"Invalid pack / 模板包无效: {first['location']}: {first['message']}{more}", details)


def ensure_teams(ctx: Context, keys: list[str]) -> list[str]:
    """Create the teams a pack routes to that do not exist yet (empty; label = key)."""
    if not keys:
        return []
    have = {r.key for r in ctx.conn.execute(sa.select(st.teams.c.key).where(st.teams.c.key.in_(keys)))}
    created = [k for k in keys if k not in have]
    for k in created:
        ctx.conn.execute(st.teams.insert().values(key=k, label=k))
        audit.write(ctx.conn, at=ctx.now, user_id=ctx.actor.id, action="permission",
                    summary=f"created team {k} (referenced by a pack)", after={"key": k, "label": k})
    return created


def import_pack(ctx: Context, svc, pack: Pack, *, with_sample_data: bool = False,
                now: datetime | None = None) -> dict:
    """Install ``pack`` (or upgrade the app installed from an older version of it) in the caller's
    transaction; ``svc`` gives the catalog and the records service. Raises on any problem."""
    pub.require_builder(ctx)
    if now is not None:
        ctx = Context(ctx.conn, ctx.actor, now)
    plan, target = _plan(ctx.conn, pack)
    if plan["errors"] or target is None:
        _refuse(plan)
    key = plan["app"]
    try:
        teams = ensure_teams(ctx, plan["teams"])
        message = f"pack {pack.name} {pack.version}"
        if plan["action"] == "install":
            pub.create_app(ctx, target)
            published = pub.publish(ctx, svc.catalog, key, message=message)
        else:
            message = f"upgrade of pack {pack.name} {plan['installed']['version']} → {pack.version}"
            pub.put_draft(ctx, key, target)
            latest = store.latest_revision(ctx.conn, key)
            published = None
            if latest is None or latest[1] != store.get_draft(ctx.conn, key):
                published = pub.publish(ctx, svc.catalog, key, message=message)
        store.set_pack(ctx.conn, key, pack.name, pack.version, pack.app)
        audit.write(ctx.conn, at=ctx.now, user_id=ctx.actor.id, action="metadata", app=key,
                    summary=f"{plan['action']} {message}",
                    details={"conflicts": plan["conflicts"], "teams_created": teams})
        loaded: dict[str, int] | None = None
        if with_sample_data and plan["action"] == "install":
            loaded = _load_sample_data(ctx, svc, pack, key)
    except Exception:
        svc.catalog.forget(key)
        raise
    out = {k: v for k, v in plan.items() if k != "errors"}
    out.update(revision=published["revision"] if published else store.published_number(ctx.conn, key),
               public_forms=published.get("public_forms", {}) if published else pub.public_form_tokens(ctx.conn, key),
               teams_created=teams, sample_data=loaded or {})
    if with_sample_data and plan["action"] != "install":
        out["sample_data_skipped"] = "sample data loads on a first install only / 示例数据仅在首次安装时导入"
    return out


def _load_sample_data(ctx: Context, svc, pack: Pack, key: str) -> dict[str, int]:
    # The pack was allowed in by a builder; its sample rows are part of it, whatever the app's
    # permissions say about that person (rules, routing and flows still run as on a POST).
    loader = ctx.with_actor(dataclasses.replace(ctx.actor, role="system", token_scope=None, token_apps=None))
    app = App.from_dict(pack.app)
    ids: dict[str, list[int]] = {}
    for entity_key, rows in pack.sample_data.items():
        rel = pack.sample_files.get(entity_key) or f"data/{entity_key}.csv"
        bodies, batches = bodies_for(app, entity_key, rows, rel, ids)
        created: list[int] = []
        for batch in batches:
            for start in range(0, len(batch), BATCH):
                part = batch[start:start + BATCH]
                chunk = [resolve_self(bodies[i], created) for i in part]
                try:
                    records = svc.records.create_many(loader, key, entity_key, chunk)
                except ValidationFailed as exc:
                    raise _row_errors(exc, rel, part[0]) from exc
                except JimuError as exc:
                    raise DefinitionError(f"Sample data of {entity_key} failed / 样例数据导入失败: {exc.message}",
                                          [{"location": f"{rel} rows {part[0] + 1}–{part[-1] + 1}",
                                            "message": exc.message}]) from exc
                created += [r["id"] for r in records]
        ids[entity_key] = created
    return {e: len(v) for e, v in ids.items()}


def _row_errors(exc: ValidationFailed, rel: str, offset: int) -> DefinitionError:
    details = []
    for name, messages in (exc.details or {}).items() if isinstance(exc.details, dict) else []:
        m = re.match(r"^\[(\d+)\]\.(.+)$", str(name))
        where = f"{rel} row {offset + int(m.group(1)) + 1}, column {m.group(2)}" if m else f"{rel}: {name}"
        for msg in messages if isinstance(messages, list) else [messages]:
            details.append({"location": where, "message": str(msg)})
    details = details or [{"location": rel, "message": exc.message}]
    return DefinitionError(f"Invalid sample data / 样例数据无效: {details[0]['location']}: {details[0]['message']}",
                           details)


# ---------------------------------------------------------------------- the built-in library
def grant_demo_people(conn: Connection, doc: dict, now: datetime) -> None:
    """Demo users ``agent`` and ``manager`` in every team the app routes to (``manager``
    supervising), ``manager`` with every app role and ``agent`` with the first one."""
    users = {r.name: r.id for r in conn.execute(sa.select(st.users.c.name, st.users.c.id)
                                                .where(st.users.c.name.in_(["agent", "manager"])))}
    if not users:
        return
    ctx = Context(conn, SYSTEM, now)
    teams = referenced_teams(doc)
    ensure_teams(ctx, teams)
    for team in teams:
        for uid in users.values():
            exists = conn.execute(sa.select(st.team_members.c.team).where(
                st.team_members.c.team == team, st.team_members.c.user_id == uid)).first()
            if exists is None:
                conn.execute(st.team_members.insert().values(team=team, user_id=uid))
        if "manager" in users:
            conn.execute(st.teams.update().where(st.teams.c.key == team, st.teams.c.supervisor_id.is_(None))
                         .values(supervisor_id=users["manager"]))
    roles = [r for r in doc.get("roles") or [] if isinstance(r, str)]
    grants = {"manager": roles, "agent": roles[:1]}
    for name, uid in users.items():
        for role in grants[name]:
            exists = conn.execute(sa.select(st.app_roles.c.role).where(
                st.app_roles.c.user_id == uid, st.app_roles.c.app == doc["app"], st.app_roles.c.role == role)).first()
            if exists is None:
                conn.execute(st.app_roles.insert().values(user_id=uid, app=doc["app"], role=role))
    audit.write(conn, at=now, user_id=None, action="permission", app=doc["app"],
                summary="demo users added to the app's teams and roles", details={"teams": teams, "roles": grants})


def install_builtin_packs(svc, with_sample_data: bool = True) -> list[dict]:
    """Install every built-in pack that is not installed yet (one transaction per pack)."""
    results = []
    now = datetime.now(ZoneInfo(svc.timezone))
    for folder in list_builtin_packs():
        pack = load_pack(folder, now=now)
        key = pack.app["app"]
        with svc.engine.begin() as conn:
            installed = store.app_exists(conn, key)
            grant_demo_people(conn, pack.app, now)
            if installed:
                results.append({"app": key, "action": "skipped", "pack": {"name": pack.name,
                                                                          "version": pack.version}})
                continue
            results.append(import_pack(Context(conn, SYSTEM, now), svc, pack, with_sample_data=with_sample_data))
    return results
