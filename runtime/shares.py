"""Sharing one record with a user or a team: list, add (or change) and remove shares.

Owns the rules of a share: the record must be readable by the caller (else 404, as if it did not
exist); only someone who may update the record shares it or takes a share back (403); a share is
``read`` or ``edit`` and grants at most that (the permission layer counts only ``edit`` shares for
writes and no share for deletes, see ``runtime.permissions.row_filter``). Every change is written
to the audit log, so it shows on the record's timeline. HTTP lives in ``web.api.data``.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from engines.errors import NotFound, PermissionDenied, ValidationFailed

from . import audit
from . import system_tables as st
from .catalog import CompiledApp
from .context import Context
from .ids import parse_id
from .permissions import access_for, row_filter

ACCESS = ("read", "edit")


def _record_id(record_id: Any) -> int:
    rid = parse_id(record_id)
    if rid is None:
        raise NotFound("No such record / 记录不存在", {"id": str(record_id)[:40]})
    return rid


def _reachable(ctx: Context, capp: CompiledApp, entity_key: str, rid: int, scope: str, *, for_write: bool) -> bool:
    table = capp.tables[entity_key]
    q = sa.select(table.c.id).where(table.c.id == rid)
    clause = row_filter(ctx.actor, capp, entity_key, scope, for_write=for_write)
    if clause is not None:
        q = q.where(clause)
    return ctx.conn.execute(q).first() is not None


def _check(ctx: Context, capp: CompiledApp, entity_key: str, record_id: Any, *, to_change: bool) -> int:
    """The record id when the caller may read (and, to change shares, update) the record."""
    entity = capp.entity(entity_key)
    rid = _record_id(record_id)
    access = access_for(ctx.actor, capp, entity_key)
    read = access.scope("read")
    if read == "none" or not _reachable(ctx, capp, entity_key, rid, read, for_write=False):
        raise NotFound("No such record / 记录不存在", {"id": rid})
    if to_change:
        update = access.scope("update")
        if update == "none" or not _reachable(ctx, capp, entity_key, rid, update, for_write=True):
            raise PermissionDenied(f"Only those who may change this {entity.label} may share it "
                                   f"/ 只有可修改此记录的人才能共享", {"operation": "share"})
    return rid


def _share_dict(row, names: dict[int, str]) -> dict:
    return {"id": row.id, "user": row.user_id, "user_name": names.get(row.user_id) if row.user_id else None,
            "team": row.team, "access": row.access,
            "created_at": row.created_at.isoformat() if row.created_at else None, "created_by": row.created_by}


def _names(conn: Connection, ids) -> dict[int, str]:
    ids = sorted({i for i in ids if i})
    if not ids:
        return {}
    return dict(conn.execute(sa.select(st.users.c.id, st.users.c.name).where(st.users.c.id.in_(ids))).all())


def list_shares(ctx: Context, capp: CompiledApp, entity_key: str, record_id: Any) -> list[dict]:
    rid = _check(ctx, capp, entity_key, record_id, to_change=False)
    s = st.shares
    rows = ctx.conn.execute(sa.select(s).where(s.c.app == capp.key, s.c.entity == entity_key, s.c.record_id == rid)
                            .order_by(s.c.id)).all()
    names = _names(ctx.conn, [r.user_id for r in rows])
    return [_share_dict(r, names) for r in rows]


def _parse(conn: Connection, body: Any) -> tuple[int | None, str | None, str, str]:
    if not isinstance(body, dict):
        raise ValidationFailed("The body must be a JSON object / 请求体必须是对象", {"_body": ["must be an object"]})
    errors: dict[str, list[str]] = {}
    for k in body:
        if k not in ("user", "team", "access"):
            errors.setdefault(str(k), []).append("unknown field / 未知字段")
    user, team = body.get("user"), body.get("team")
    access = body.get("access", "read")
    if access not in ACCESS:
        errors.setdefault("access", []).append("must be read or edit / 必须是 read 或 edit")
    if (user is None) == (team is None):
        errors.setdefault("user", []).append('give either "user" (an id) or "team" (a key) / 须指定用户或团队之一')
    label = ""
    if user is not None:
        row = None
        if isinstance(user, int) and not isinstance(user, bool) and 0 < user < 2**62:
            row = conn.execute(sa.select(st.users.c.id, st.users.c.name, st.users.c.active)
                               .where(st.users.c.id == user)).first()
        if row is None or not row.active:
            errors.setdefault("user", []).append("no active user with this id / 用户不存在")
        else:
            label = f"user {row.name}"
    if team is not None:
        found = isinstance(team, str) and len(team) <= 40 and conn.execute(
            sa.select(st.teams.c.key).where(st.teams.c.key == team)).first() is not None
        if not found:
            errors.setdefault("team", []).append("unknown team / 团队不存在")
        label = f"team {team}"
    if errors:
        raise ValidationFailed("Invalid share / 共享设置无效", errors)
    return user, team, access, label


def add_share(ctx: Context, capp: CompiledApp, entity_key: str, record_id: Any, body: Any) -> tuple[dict, bool]:
    """Share the record (or change an existing share's access): (the share, whether it is new)."""
    rid = _check(ctx, capp, entity_key, record_id, to_change=True)
    user, team, access, label = _parse(ctx.conn, body)
    s = st.shares
    who = s.c.user_id == user if user is not None else s.c.team == team
    mine = sa.and_(s.c.app == capp.key, s.c.entity == entity_key, s.c.record_id == rid, who)
    existing = ctx.conn.execute(sa.select(s).where(mine)).first()
    if existing is not None:
        if existing.access != access:
            ctx.conn.execute(s.update().where(s.c.id == existing.id).values(access=access))
        share_id, created = existing.id, False
        before = {"access": existing.access}
    else:
        share_id = ctx.conn.execute(s.insert().values(
            app=capp.key, entity=entity_key, record_id=rid, user_id=user, team=team, access=access,
            created_at=ctx.now, created_by=ctx.actor.id)).inserted_primary_key[0]
        created, before = True, None
    if created or before["access"] != access:
        audit.write(ctx.conn, at=ctx.now, user_id=ctx.actor.id, action="share", app=capp.key, entity=entity_key,
                    record_id=rid, summary=f"shared with {label} ({access})", before=before,
                    after={"user": user, "team": team, "access": access}, details={"share_id": share_id})
    row = ctx.conn.execute(sa.select(s).where(s.c.id == share_id)).first()
    return _share_dict(row, _names(ctx.conn, [row.user_id])), created


def remove_share(ctx: Context, capp: CompiledApp, entity_key: str, record_id: Any, share_id: Any) -> None:
    rid = _check(ctx, capp, entity_key, record_id, to_change=True)
    s = st.shares
    sid = parse_id(share_id)
    if sid is None:
        raise NotFound("No such share / 共享不存在", {"share_id": str(share_id)[:40]})
    row = ctx.conn.execute(sa.select(s).where(s.c.id == sid, s.c.app == capp.key, s.c.entity == entity_key,
                                              s.c.record_id == rid)).first()
    if row is None:
        raise NotFound("No such share / 共享不存在", {"share_id": sid})
    ctx.conn.execute(s.delete().where(s.c.id == sid))
    label = f"user {_names(ctx.conn, [row.user_id]).get(row.user_id, row.user_id)}" if row.user_id else f"team {row.team}"
    audit.write(ctx.conn, at=ctx.now, user_id=ctx.actor.id, action="share", app=capp.key, entity=entity_key,
                record_id=rid, summary=f"stopped sharing with {label}",
                before={"user": row.user_id, "team": row.team, "access": row.access}, after=None,
                details={"share_id": sid})


def forget_record(conn: Connection, app_key: str, entity_key: str, record_id: int) -> None:
    """Drop the shares of a deleted record (an id may be given again to a new record)."""
    s = st.shares
    conn.execute(s.delete().where(s.c.app == app_key, s.c.entity == entity_key, s.c.record_id == record_id))
