"""Approvals and tasks: the work waiting for people (``jimu_tasks``).

A transition with ``approval:`` does not move the record at once: ``request_approval`` creates one
approval task per approver (``user:NAME``, ``role:ROLE``, ``team:KEY``, ``field:F``) and notifies
them. ``decide`` records an approver's decision; ``engines.flows.approval_outcome`` says whether
the request is settled (``any`` 或签 / ``all`` 会签): approved runs the transition (as the approver,
roles not checked, states and guards still), rejected leaves the record where it is; either way
the timeline says who decided what. Plain tasks (kind ``task``, from the ``task`` action) are
listed, completed and reassigned here too.
"""
from __future__ import annotations

import json
import secrets
from datetime import UTC
from typing import Any

import sqlalchemy as sa

from engines.errors import Conflict, NotFound, PermissionDenied, TransitionNotAllowed, ValidationFailed
from engines.flows import approval_outcome

from . import audit, outbox
from . import system_tables as st
from .actions import resolve_users, system_actor
from .context import Context
from .ids import parse_id
from .record_values import title_of

DECISIONS = {"approve": "approved", "reject": "rejected"}


def _task_dict(r, tz=UTC) -> dict:
    payload = json.loads(r["payload"] or "{}")
    return {"id": r["id"], "kind": r["kind"], "title": r["title"], "app": r["app"], "entity": r["entity"],
            "record_id": r["record_id"], "assignee": r["assignee_id"], "status": r["status"],
            "due_at": r["due_at"].astimezone(tz).isoformat() if r["due_at"] else None,
            "created_at": r["created_at"].astimezone(tz).isoformat(),
            "completed_at": r["completed_at"].astimezone(tz).isoformat() if r["completed_at"] else None,
            "comment": r["comment"],
            **({"transition": payload.get("transition"), "mode": payload.get("mode"),
                "request": payload.get("request"), "from": payload.get("from"), "to": payload.get("to")}
               if r["kind"] == "approval" else {})}


def _open_requests(conn, app: str, entity: str, record_id: int) -> list[dict]:
    t = st.tasks
    rows = conn.execute(sa.select(t).where(t.c.app == app, t.c.entity == entity, t.c.record_id == record_id,
                                           t.c.kind == "approval", t.c.status == "open")).mappings()
    return [json.loads(r["payload"] or "{}") for r in rows]


def request_approval(flows, ctx: Context, capp, entity, prev: dict, info, inst, t, values: Any,
                     comment: str | None) -> dict:
    conn = ctx.conn
    if any(p.get("transition") == t.key for p in _open_requests(conn, capp.key, entity.key, prev["id"])):
        raise Conflict(f"'{t.label}' is already waiting for approval / 「{t.label}」已在审批中",
                       {"transition": t.key, "reason": "approval_pending"})
    approvers = resolve_users(ctx, capp, entity.key, prev, list(t.approval.approvers))
    if not approvers:
        raise TransitionNotAllowed(f"Nobody can approve '{t.label}' ({', '.join(t.approval.approvers)}) / "
                                   f"找不到「{t.label}」的审批人",
                                   {"reason": "no_approvers", "transition": t.key,
                                    "approvers": list(t.approval.approvers)})
    request = secrets.token_hex(8)
    payload = {"request": request, "flow": info.flow.key, "revision": info.revision, "transition": t.key,
               "from": inst.state, "to": t.to, "mode": t.approval.mode, "approvers": approvers,
               "values": values or {}, "comment": comment, "requested_by": ctx.actor.id}
    title = f"审批 Approve「{t.label}」: {title_of(entity, prev)}"[:500]
    ids = [conn.execute(st.tasks.insert().values(
        kind="approval", title=title, app=capp.key, entity=entity.key, record_id=prev["id"], assignee_id=user,
        status="open", payload=json.dumps(payload, ensure_ascii=False, default=str), created_at=ctx.now))
        .inserted_primary_key[0] for user in approvers]
    audit.write(conn, at=ctx.now, user_id=ctx.actor.id, action="approval", app=capp.key, entity=entity.key,
                record_id=prev["id"], summary=f"approval requested: {t.key} ({t.approval.mode}) / 已提交审批",
                details={"request": request, "transition": t.key, "approvers": approvers, "mode": t.approval.mode,
                         "comment": comment})
    outbox.enqueue(conn, "notify", {"user_ids": approvers, "message": f"待审批 Approval needed: {title}"},
                   now=ctx.now, app=capp.key, entity=entity.key, record_id=prev["id"])
    return {"status": "pending", "request": request, "tasks": ids, "approvers": approvers, "mode": t.approval.mode}


def _load_task(conn, task_id: Any):
    tid = parse_id(task_id)
    if tid is None:
        raise NotFound("No such task / 任务不存在", {"id": str(task_id)[:40]})
    row = conn.execute(sa.select(st.tasks).where(st.tasks.c.id == tid)).mappings().first()
    if row is None:
        raise NotFound("No such task / 任务不存在", {"id": tid})
    return row


def _mine(ctx: Context, row) -> None:
    if row["assignee_id"] != ctx.actor.id and not ctx.actor.is_admin:
        raise PermissionDenied("This task is assigned to someone else / 该任务不属于您", {"task": row["id"]})


def decide(flows, ctx: Context, task_id: Any, decision: Any, comment: Any = None) -> dict:
    conn = ctx.conn
    row = _load_task(conn, task_id)
    if row["kind"] != "approval":
        raise Conflict("This task is not an approval: complete it instead / 该任务不是审批，请直接完成",
                       {"task": row["id"]})
    _mine(ctx, row)
    if decision not in DECISIONS:
        raise ValidationFailed('decision must be "approve" or "reject" / 审批结果必须是 approve 或 reject',
                               {"decision": ["approve or reject"]})
    if comment is not None and (not isinstance(comment, str) or len(comment) > 4000):
        raise ValidationFailed("comment must be text / 备注须为文本", {"comment": ["text, at most 4000 characters"]})
    if row["status"] != "open":
        raise Conflict(f"This approval is already {row['status']} / 该审批已处理", {"status": row["status"]})
    t = st.tasks
    conn.execute(t.update().where(t.c.id == row["id"]).values(
        status=DECISIONS[decision], completed_at=ctx.now, completed_by=ctx.actor.id, comment=comment))
    payload = json.loads(row["payload"] or "{}")
    group = [r for r in conn.execute(sa.select(t).where(
        t.c.app == row["app"], t.c.entity == row["entity"], t.c.record_id == row["record_id"],
        t.c.kind == "approval")).mappings() if json.loads(r["payload"] or "{}").get("request") == payload.get("request")]
    decided = sorted((r for r in group if r["status"] in ("approved", "rejected")),
                     key=lambda r: (r["completed_at"], r["id"]))
    outcome = approval_outcome(payload.get("mode", "any"), payload.get("approvers") or [],
                               [(r["assignee_id"], r["status"]) for r in decided])
    if outcome != "pending":
        conn.execute(t.update().where(t.c.id.in_([r["id"] for r in group]), t.c.status == "open")
                     .values(status="cancelled", completed_at=ctx.now))
    capp = flows.records.app(ctx, row["app"])
    word = {"approve": "approved", "reject": "rejected"}[decision]
    audit.write(conn, at=ctx.now, user_id=ctx.actor.id, action="approval", app=row["app"], entity=row["entity"],
                record_id=row["record_id"],
                summary=f"{payload.get('transition')}: {word} by {ctx.actor.name} → {outcome} / "
                        f"{'同意' if decision == 'approve' else '驳回'}",
                details={"request": payload.get("request"), "decision": decision, "comment": comment,
                         "outcome": outcome})
    if outcome == "approved":
        approver = system_actor(ctx)            # the approval grants the transition: roles do not apply
        flows.transition_system(ctx, capp, row["entity"], row["record_id"], payload["transition"],
                                comment=payload.get("comment"), values=payload.get("values") or None,
                                actor=approver, approval={"request": payload.get("request"),
                                                          "decided_by": ctx.actor.id, "comment": comment})
    elif outcome == "rejected" and payload.get("requested_by"):
        outbox.enqueue(conn, "notify", {"user_ids": [payload["requested_by"]],
                                        "message": f"审批被驳回 Rejected: {row['title']} {comment or ''}".strip()},
                       now=ctx.now, app=row["app"], entity=row["entity"], record_id=row["record_id"])
    fresh = conn.execute(sa.select(t).where(t.c.id == row["id"])).mappings().first()
    return {"task": _task_dict(fresh, capp.tz), "outcome": outcome}


def list_tasks(ctx: Context, *, status: str | None = "open", limit: int = 200) -> dict:
    t = st.tasks
    q = sa.select(t).where(t.c.assignee_id == ctx.actor.id)
    if status:
        q = q.where(t.c.status == status)
    rows = ctx.conn.execute(q.order_by(t.c.due_at.is_(None), t.c.due_at, t.c.id).limit(limit)).mappings().all()
    return {"items": [_task_dict(r) for r in rows], "total": len(rows)}


def complete_task(ctx: Context, task_id: Any, comment: Any = None) -> dict:
    row = _load_task(ctx.conn, task_id)
    if row["kind"] == "approval":
        raise Conflict("An approval is decided, not completed: POST /approvals/{id}/decide / 审批请使用审批接口",
                       {"task": row["id"]})
    _mine(ctx, row)
    if row["status"] != "open":
        raise Conflict(f"This task is already {row['status']} / 该任务已处理", {"status": row["status"]})
    if comment is not None and not isinstance(comment, str):
        raise ValidationFailed("comment must be text / 备注须为文本", {"comment": ["text"]})
    t = st.tasks
    ctx.conn.execute(t.update().where(t.c.id == row["id"]).values(
        status="done", completed_at=ctx.now, completed_by=ctx.actor.id, comment=comment))
    if row["app"] and row["record_id"]:
        audit.write(ctx.conn, at=ctx.now, user_id=ctx.actor.id, action="task", app=row["app"], entity=row["entity"],
                    record_id=row["record_id"], summary=f"task done: {row['title']} / 任务已完成",
                    details={"task": row["id"], "comment": comment})
    return _task_dict(ctx.conn.execute(sa.select(t).where(t.c.id == row["id"])).mappings().first())


def reassign_task(ctx: Context, task_id: Any, user_id: Any) -> dict:
    row = _load_task(ctx.conn, task_id)
    _mine(ctx, row)
    if row["status"] != "open":
        raise Conflict(f"This task is already {row['status']} / 该任务已处理", {"status": row["status"]})
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        raise ValidationFailed("to must be a user id / to 必须是用户编号", {"to": ["a user id"]})
    u = st.users
    if ctx.conn.execute(sa.select(u.c.id).where(u.c.id == user_id, u.c.active.is_(True))).first() is None:
        raise ValidationFailed("No such user / 用户不存在", {"to": ["no such user"]})
    t = st.tasks
    ctx.conn.execute(t.update().where(t.c.id == row["id"]).values(assignee_id=user_id))
    if row["kind"] == "approval":     # every task of the request knows the new approver
        request = json.loads(row["payload"] or "{}").get("request")
        for other in ctx.conn.execute(sa.select(t.c.id, t.c.payload).where(
                t.c.app == row["app"], t.c.record_id == row["record_id"], t.c.kind == "approval")).all():
            payload = json.loads(other.payload or "{}")
            if payload.get("request") == request:
                payload["approvers"] = [user_id if a == row["assignee_id"] else a
                                        for a in payload.get("approvers") or []]
                ctx.conn.execute(t.update().where(t.c.id == other.id)
                                 .values(payload=json.dumps(payload, ensure_ascii=False, default=str)))
    if row["app"] and row["record_id"]:
        audit.write(ctx.conn, at=ctx.now, user_id=ctx.actor.id, action="task", app=row["app"], entity=row["entity"],
                    record_id=row["record_id"], summary=f"task reassigned: {row['title']} / 任务已转交",
                    details={"task": row["id"], "from": row["assignee_id"], "to": user_id})
    return _task_dict(ctx.conn.execute(sa.select(t).where(t.c.id == row["id"])).mappings().first())
