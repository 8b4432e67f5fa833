"""The one permission check of the records service and the query layer.

For an actor, an app and an entity: the scope of each operation (``none|own|team|all``; create is
all-or-none), the row filter that a scope means as a SQL clause (so lists, reports and exports
filter in the database, with no per-row queries), and the hidden and read-only fields. Platform
admins see everything. An app without a ``permissions`` section is open to every signed-in user.

A user's rights are the union of the entries of their app roles: the widest scope per operation;
a field is hidden only when every entry that lets them read hides it, read-only only when every
entry that lets them write makes it read-only. An API token narrows its user (read scope: no
writes; a list of apps: nothing elsewhere). The ``public`` actor of a public form may create
records of that form's entity and do nothing else (``public_actor``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa

from engines import expressions as ex
from engines.errors import PermissionDenied
from engines.model import SYSTEM_FIELDS

from . import system_tables as st
from .catalog import CompiledApp
from .context import Actor

SCOPES = ("none", "own", "team", "all")
OPS = ("create", "read", "update", "delete", "export")
PUBLIC_ROLE = "public"
_PUBLIC_GRANT = "public-form:"


@dataclass(frozen=True)
class Access:
    scopes: dict[str, str]
    hidden: frozenset[str]
    readonly: frozenset[str]

    def scope(self, op: str) -> str:
        return self.scopes.get(op, "none")


FULL = Access({op: "all" for op in OPS}, frozenset(), frozenset())
NOTHING = Access({}, frozenset(), frozenset())


def public_actor(app_key: str, entity_key: str) -> Actor:
    """The anonymous actor of a public form: may create records of one entity of one app."""
    return Actor(id=None, name="public", role=PUBLIC_ROLE,
                 app_roles={app_key: frozenset({_PUBLIC_GRANT + entity_key})})


def access_for(actor: Actor, capp: CompiledApp, entity_key: str) -> Access:
    if actor.role == PUBLIC_ROLE:
        if _PUBLIC_GRANT + entity_key in actor.roles_in(capp.key):
            return Access({"create": "all"}, frozenset(), frozenset())
        return NOTHING
    if actor.token_apps is not None and capp.key not in actor.token_apps:
        return NOTHING
    perms = capp.app.permissions
    if actor.is_admin or not perms:
        return _narrow_for_token(actor, FULL)
    access = _entity_access(actor, capp, entity_key)
    paths = _hidden_paths(actor, capp, entity_key)
    if paths:
        access = Access(access.scopes, access.hidden | paths, access.readonly | paths)
    return _narrow_for_token(actor, access)


def _hidden_paths(actor: Actor, capp: CompiledApp, entity_key: str) -> frozenset[str]:
    """``lookup.field`` for the fields of a lookup's target the actor may not read there (every
    field when they may not read that entity), so that no trace, filter or group-by shows them."""
    entity = capp.app.entity(entity_key)
    out: set[str] = set()
    for f in entity.fields if entity else []:
        target = capp.app.entity(f.target or "") if f.type == "lookup" else None
        if target is None:
            continue
        there = _entity_access(actor, capp, target.key)
        if there.scope("read") == "none":
            out.update(f"{f.key}.{x}" for x in [*(g.key for g in target.fields), *SYSTEM_FIELDS])
        else:
            out.update(f"{f.key}.{x}" for x in there.hidden)
    return frozenset(out)


def _entity_access(actor: Actor, capp: CompiledApp, entity_key: str) -> Access:
    """The rights the actor's roles give on one entity (before tokens narrow them)."""
    perms = capp.app.permissions
    roles = actor.roles_in(capp.key)
    entries = [p for p in perms if p.get("role") in roles and p.get("entity") in (entity_key, "*")]
    if not entries:
        return NOTHING
    scopes: dict[str, str] = {}
    for op in OPS:
        best = "none"
        for e in entries:
            val = _entry_scope(e, op)
            if SCOPES.index(val) > SCOPES.index(best):
                best = val
        scopes[op] = best
    # a field is hidden only when every entry that lets them read it hides it
    readable = [e for e in entries if _entry_scope(e, "read") != "none"] or entries
    hidden = frozenset.intersection(*[frozenset(e.get("hidden") or []) for e in readable])
    writable = [e for e in entries if _entry_scope(e, "update") != "none" or e.get("create")] or entries
    readonly = frozenset.intersection(*[frozenset(e.get("readonly") or []) | frozenset(e.get("hidden") or [])
                                        for e in writable]) | hidden
    return Access(scopes, hidden, readonly)


def _entry_scope(entry: dict, op: str) -> str:
    val = entry.get(op)
    if op == "create":
        return "all" if val is True else "none"
    return val if val in SCOPES else "none"


def _narrow_for_token(actor: Actor, access: Access) -> Access:
    if actor.token_scope == "read":
        return Access({op: s for op, s in access.scopes.items() if op in ("read", "export")},
                      access.hidden, access.readonly)
    return access


def require(access: Access, op: str, what: str) -> str:
    scope = access.scope(op)
    if scope == "none":
        raise PermissionDenied(f"You may not {op} {what} / 无权{_OP_ZH.get(op, op)}", {"operation": op})
    return scope


_OP_ZH = {"create": "创建", "read": "查看", "update": "修改", "delete": "删除", "export": "导出"}


def team_member_ids(actor: Actor):
    teams = actor.teams | actor.supervised_teams
    return sa.select(st.team_members.c.user_id).where(st.team_members.c.team.in_(sorted(teams)))


def row_filter(actor: Actor, capp: CompiledApp, entity_key: str, scope: str, *, for_write: bool = False,
               shares: bool = True):
    """The SQL clause of the rows a scope lets the actor see (None = all rows).

    ``for_write`` counts only ``edit`` shares (a read share never makes a record editable);
    ``shares=False`` counts none (deleting is never granted by a share).
    """
    if scope == "all":
        return None
    if scope == "none" or actor.id is None:
        return sa.false()
    table = capp.tables[entity_key]
    entity = capp.entity(entity_key)
    mine = [table.c.owner == actor.id]
    mine += [table.c[k] == actor.id for k in entity.assignee_fields if k in table.c]
    if shares:
        mine.append(table.c.id.in_(shared_ids(actor, capp.key, entity_key, edit_only=for_write)))
    if scope == "team":
        team_ids = team_member_ids(actor)
        mine.append(table.c.owner.in_(team_ids))
        mine += [table.c[k].in_(team_ids) for k in entity.assignee_fields if k in table.c]
    return sa.or_(*mine)


def shared_ids(actor: Actor, app_key: str, entity_key: str, *, edit_only: bool = False):
    """The ids of the records of an entity shared with the actor or one of their teams."""
    s = st.shares
    teams = sorted(actor.teams | actor.supervised_teams)
    q = sa.select(s.c.record_id).where(
        s.c.app == app_key, s.c.entity == entity_key,
        sa.or_(s.c.user_id == actor.id, s.c.team.in_(teams) if teams else sa.false()))
    if edit_only:
        q = q.where(s.c.access == "edit")
    return q


def check_filter_paths(actor: Actor, capp: CompiledApp, entity_key: str, text: str | None) -> None:
    """Refuse a filter that reaches through a lookup into a field the actor may not read there.

    Plain names are checked by the query layer against the entity's hidden fields; a dotted path
    (``customer.revenue``) is checked here against the target entity's rights, so that a filter
    cannot probe values the actor could not read directly.
    """
    if not isinstance(text, str) or "." not in text:
        return
    try:
        compiled = capp.compile(text, entity_key, expect=ex.BOOL)
    except ex.ExpressionError:
        return   # reported by the query layer with its position
    hidden = access_for(actor, capp, entity_key).hidden
    blocked = sorted(n for n in compiled.names if "." in n and n in hidden)
    if blocked:
        raise PermissionDenied(f"You may not filter on {', '.join(blocked)} / 无权按该字段筛选", {"filter": blocked})


def guard_permission_change(conn, actor: Actor, now, app_key: str, old_doc: dict | None, new_doc: dict) -> None:
    """Only admins change who may do what in a published app (its ``permissions``); builders change
    the rest of the metadata. Every change of them is written to the audit log as a permission change.
    """
    from . import audit

    before = (old_doc or {}).get("permissions") or []
    after = new_doc.get("permissions") or []
    if _canonical(before) == _canonical(after):
        return
    if old_doc is not None and not actor.is_admin:
        raise PermissionDenied("Only admins may change an app's permissions / 仅管理员可修改应用的权限",
                               {"permissions": ["changed / 已修改"]})
    audit.write(conn, at=now, user_id=actor.id, action="permission", app=app_key,
                summary=f"changed the permissions of app {app_key}", before=before, after=after)


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
