"""REST: workflow transitions, my tasks and approvals, my notifications, the delivery log."""
from __future__ import annotations

from flask import jsonify, request

from engines.errors import PermissionDenied, ValidationFailed
from runtime import approvals, outbox
from runtime.flows_runtime import FlowService

from ..app import services
from ..auth import actor, tx
from . import bp
from .util import check_token_app, json_body, require_write


def _flows() -> FlowService:
    return FlowService(services().records)


def _object(body) -> dict:
    if not isinstance(body, dict):
        raise ValidationFailed("The body must be a JSON object / 请求体必须是对象", {"_body": ["must be an object"]})
    return body


@bp.post("/apps/<app_key>/<entity>/<record_id>/transitions/<transition>")
def run_transition(app_key, entity, record_id, transition):
    require_write(actor())
    check_token_app(actor(), app_key)
    body = _object(json_body(allow_empty=True))
    unknown = sorted(set(body) - {"comment", "values"})
    if unknown:
        raise ValidationFailed(f"Unknown key(s): {', '.join(unknown)} (comment, values) / 未知参数",
                               {k: ["unknown / 未知"] for k in unknown})
    with tx() as ctx:
        out = _flows().transition(ctx, app_key, entity, record_id, transition, comment=body.get("comment"),
                                  values=body.get("values"))
    return jsonify(out), 202 if "_approval" in out else 200


@bp.get("/tasks")
def my_tasks():
    status = request.args.get("status", "open")
    if status not in ("open", "done", "approved", "rejected", "cancelled", "all"):
        raise ValidationFailed("status must be open, done, approved, rejected, cancelled or all / 状态无效",
                               {"status": ["invalid"]})
    with tx() as ctx:
        return jsonify(approvals.list_tasks(ctx, status=None if status == "all" else status))


@bp.post("/tasks/<task_id>/complete")
def complete_task(task_id):
    require_write(actor())
    body = _object(json_body(allow_empty=True))
    with tx() as ctx:
        return jsonify(approvals.complete_task(ctx, task_id, body.get("comment")))


@bp.post("/tasks/<task_id>/reassign")
def reassign_task(task_id):
    require_write(actor())
    body = _object(json_body())
    with tx() as ctx:
        return jsonify(approvals.reassign_task(ctx, task_id, body.get("to")))


@bp.post("/approvals/<task_id>/decide")
def decide(task_id):
    require_write(actor())
    body = _object(json_body())
    with tx() as ctx:
        out = approvals.decide(_flows(), ctx, task_id, body.get("decision"), body.get("comment"))
    return jsonify(out)


@bp.get("/notifications")
def my_notifications():
    unread = request.args.get("unread") in ("1", "true", "yes")
    with tx() as ctx:
        return jsonify(outbox.notifications(ctx.conn, ctx.actor.id, unread_only=unread,
                                            limit=request.args.get("limit", 50, type=int) or 50))


@bp.post("/notifications/read")
def read_notifications():
    body = _object(json_body(allow_empty=True))
    with tx() as ctx:
        outbox.mark_read(ctx.conn, ctx.actor.id, body.get("ids"), everything=body.get("all") is True, now=ctx.now)
        return jsonify({"unread": outbox.unread_count(ctx.conn, ctx.actor.id)})


@bp.get("/outbox")
def delivery_log():
    if not actor().is_admin:
        raise PermissionDenied("Only admins see the delivery log / 仅管理员可查看投递记录")
    record = request.args.get("record", type=int)
    with tx() as ctx:
        items = outbox.deliveries(ctx.conn, status=request.args.get("status") or None,
                                  app=request.args.get("app") or None, record_id=record,
                                  limit=request.args.get("limit", 100, type=int) or 100)
    return jsonify({"items": items})
