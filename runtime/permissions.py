"""The one permission check of the records service and the query layer.

For an actor, an app and an entity: the scope of each operation (``none|own|team|all``; create is
all-or-none), the row filter that a scope means as a SQL clause (so lists, reports and exports
filter in the database, with no per-row queries), and the hidden and read-only fields. Platform
admins see everything. An app without a ``permissions`` section is open to every signed-in user.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from engines.errors import PermissionDenied

from . import system_tables as st
from .catalog import CompiledApp
from .context import Actor

SCOPES = ("none", "own", "team", "all")
OPS = ("create", "read", "update", "delete", "export")


@dataclass(frozen=True)
class Access:
    scopes: dict[str, str]
    hidden: frozenset[str]
    readonly: frozenset[str]

    def scope(self, op: str) -> str:
        return self.scopes.get(op, "none")


FULL = Access({op: "all" for op in OPS}, frozenset(), frozenset())


def access_for(actor: Actor, capp: CompiledApp, entity_key: str) -> Access:
    if actor.is_admin:
        return FULL
    if actor.token_apps is not None and capp.key not in actor.token_apps:
        return Access({}, frozenset(), frozenset())
    perms = capp.app.permissions
    if not perms:
        access = FULL
    else:
        roles = actor.roles_in(capp.key)
        entries = [p for p in perms if p.get("role") in roles and p.get("entity") in (entity_key, "*")]
        if not entries:
            return Access({}, frozenset(), frozenset())
        scopes: dict[str, str] = {}
        for op in OPS:
            best = "none"
            for e in entries:
                val = e.get(op)
                val = ("all" if val else "none") if op == "create" else (val or "none")
                if SCOPES.index(val) > SCOPES.index(best):
                    best = val
            scopes[op] = best
        readable = [e for e in entries if (e.get("read") or "none") != "none"] or entries
        hidden = frozenset.intersection(*[frozenset(e.get("hidden") or []) for e in readable])
        writable = [e for e in entries if (e.get("update") or "none") != "none" or e.get("create")] or entries
        readonly = frozenset.intersection(*[frozenset(e.get("readonly") or []) for e in writable]) | hidden
        access = Access(scopes, hidden, readonly)
    if actor.token_scope == "read":
        access = Access({op: (s if op in ("read", "export") else "none") for op, s in access.scopes.items()},
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


def row_filter(actor: Actor, capp: CompiledApp, entity_key: str, scope: str, *, for_write: bool = False):
    """The SQL clause of the rows a scope lets the actor see (None = all rows)."""
    if scope == "all":
        return None
    if scope == "none" or actor.id is None:
        return sa.false()
    table = capp.tables[entity_key]
    entity = capp.entity(entity_key)
    mine = [table.c.owner == actor.id]
    mine += [table.c[k] == actor.id for k in entity.assignee_fields if k in table.c]
    shares = st.shares
    share_q = sa.select(shares.c.record_id).where(
        shares.c.app == capp.key, shares.c.entity == entity_key,
        sa.or_(shares.c.user_id == actor.id,
               shares.c.team.in_(sorted(actor.teams)) if actor.teams else sa.false()))
    if for_write:
        share_q = share_q.where(shares.c.access == "edit")
    mine.append(table.c.id.in_(share_q))
    if scope == "team":
        team_ids = team_member_ids(actor)
        mine.append(table.c.owner.in_(team_ids))
        mine += [table.c[k].in_(team_ids) for k in entity.assignee_fields if k in table.c]
    return sa.or_(*mine)
