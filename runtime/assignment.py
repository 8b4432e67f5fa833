"""Choosing a person: resolve ``user:NAME``, ``team:KEY``, ``role:ROLE`` or ``field:F`` to
candidates, then pick one by strategy — ``fixed`` (the first, or the team's supervisor),
``round_robin`` (an atomic counter per target, fair under concurrency) or ``least_loaded``
(fewest open records of the entity; open = not in a final flow state).

Every choice answers a trace: candidates, their loads, the one chosen and why.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from . import system_tables as st
from .catalog import CompiledApp
from .context import Context


def candidates(ctx: Context, capp: CompiledApp, to: str, values: dict | None = None) -> list[dict]:
    kind, _, name = to.partition(":")
    u = st.users
    active = u.c.active.is_(True)
    if to == "owner":
        uid = (values or {}).get("owner")
        q = sa.select(u.c.id, u.c.name).where(u.c.id == uid, active) if uid else None
    elif kind == "user":
        q = sa.select(u.c.id, u.c.name).where(u.c.name == name, active)
    elif kind == "team":
        q = (sa.select(u.c.id, u.c.name).join(st.team_members, st.team_members.c.user_id == u.c.id)
             .where(st.team_members.c.team == name, active))
    elif kind == "role":
        q = (sa.select(u.c.id, u.c.name).join(st.app_roles, st.app_roles.c.user_id == u.c.id)
             .where(st.app_roles.c.app == capp.key, st.app_roles.c.role == name, active))
    elif kind == "field":
        uid = (values or {}).get(name)
        q = sa.select(u.c.id, u.c.name).where(u.c.id == uid, active) if uid else None
    else:
        q = None
    if q is None:
        return []
    return [{"id": r.id, "name": r.name} for r in ctx.conn.execute(q.order_by(u.c.id).distinct())]


def loads(ctx: Context, capp: CompiledApp, entity_key: str, user_ids: list[int], target: str = "owner") -> dict[int, int]:
    """Open records per user, in one GROUP BY query."""
    if not user_ids:
        return {}
    table = capp.tables[entity_key]
    col = table.c[target] if target in table.c else table.c.owner
    q = sa.select(col, sa.func.count()).where(col.in_(user_ids)).group_by(col)
    flow = capp.app.flow_for(entity_key)
    if flow and flow.get("state_field") in table.c:
        finals = [s["key"] for s in flow.get("states") or [] if s.get("final")]
        if finals:
            q = q.where(sa.or_(table.c[flow["state_field"]].not_in(finals), table.c[flow["state_field"]].is_(None)))
    counts = {uid: 0 for uid in user_ids}
    for uid, n in ctx.conn.execute(q):
        counts[uid] = n
    return counts


def _next_counter(ctx: Context, name: str, *, peek: bool) -> int:
    c = st.counters
    if peek:
        current = ctx.conn.execute(sa.select(c.c.value).where(c.c.name == name)).scalar()
        return (current or 0) + 1
    if ctx.conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(c).values(name=name, value=1)
    stmt = stmt.on_conflict_do_update(index_elements=[c.c.name], set_={"value": c.c.value + 1}).returning(c.c.value)
    return ctx.conn.execute(stmt).scalar_one()


def choose_assignee(ctx: Context, capp: CompiledApp, entity_key: str, to: str, strategy: str | None,
                    values: dict | None, *, target: str = "owner", simulate: bool = False) -> tuple[int | None, dict]:
    strategy = strategy or "fixed"
    people = candidates(ctx, capp, to, values)
    trace: dict[str, Any] = {"to": to, "strategy": strategy, "candidates": [p["name"] for p in people]}
    if not people:
        trace["chosen"] = None
        trace["why"] = f"nobody found for {to} / 未找到可分配的人"
        return None, trace
    if strategy == "round_robin":
        n = _next_counter(ctx, f"rr:{capp.key}:{entity_key}:{to}", peek=simulate)
        chosen = people[(n - 1) % len(people)]
        trace["why"] = f"turn {n} of {len(people)} / 轮流分配第 {n} 次"
    elif strategy == "least_loaded":
        counts = loads(ctx, capp, entity_key, [p["id"] for p in people], target)
        trace["loads"] = {p["name"]: counts[p["id"]] for p in people}
        chosen = min(people, key=lambda p: (counts[p["id"]], p["id"]))
        trace["why"] = f"fewest open records ({counts[chosen['id']]}) / 负载最少"
    else:
        chosen = people[0]
        if to.startswith("team:"):
            sup = ctx.conn.execute(sa.select(st.teams.c.supervisor_id).where(st.teams.c.key == to[5:])).scalar()
            if sup is not None and any(p["id"] == sup for p in people):
                chosen = next(p for p in people if p["id"] == sup)
        trace["why"] = "fixed / 固定分配"
    trace["chosen"] = chosen["name"]
    return chosen["id"], trace
