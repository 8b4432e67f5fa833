"""REST: users, teams, API tokens and the audit log (JSON, or CSV with ``?format=csv``)."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import Response, jsonify, request, stream_with_context

from engines.errors import ValidationFailed
from engines.reports import rows_to_csv
from runtime import audit, users

from ..app import services
from ..auth import actor, tx
from . import bp
from .util import json_body, require_write


@bp.get("/users")
def list_users():
    with tx() as ctx:
        users.require_admin(ctx)
        items = users.list_users(ctx.conn)
    return jsonify({"items": items, "total": len(items)})


@bp.post("/users")
def create_user():
    require_write(actor())
    body = json_body()
    with tx() as ctx:
        return jsonify(users.api_create_user(ctx, body)), 201


@bp.get("/users/<uid>")
def get_user(uid):
    with tx() as ctx:
        if str(ctx.actor.id) != str(uid):
            users.require_admin(ctx)
        return jsonify(users.get_user(ctx.conn, uid))


@bp.patch("/users/<uid>")
def update_user(uid):
    require_write(actor())
    body = json_body()
    with tx() as ctx:
        return jsonify(users.api_update_user(ctx, uid, body))


@bp.get("/teams")
def list_teams():
    with tx() as ctx:
        users.require_admin(ctx)
        items = users.list_teams(ctx.conn)
    return jsonify({"items": items, "total": len(items)})


@bp.post("/teams")
def create_team():
    require_write(actor())
    body = json_body()
    with tx() as ctx:
        return jsonify(users.api_create_team(ctx, body)), 201


@bp.get("/teams/<key>")
def get_team(key):
    with tx() as ctx:
        users.require_admin(ctx)
        return jsonify(users.get_team(ctx.conn, key))


@bp.patch("/teams/<key>")
def update_team(key):
    require_write(actor())
    body = json_body()
    with tx() as ctx:
        return jsonify(users.api_update_team(ctx, key, body))


@bp.get("/tokens")
def list_tokens():
    with tx() as ctx:
        items = users.list_tokens(ctx.conn, ctx.actor.id)
    return jsonify({"items": items, "total": len(items)})


@bp.post("/tokens")
def create_token():
    require_write(actor())
    body = json_body(allow_empty=True)
    with tx() as ctx:
        return jsonify(users.api_create_token(ctx, body)), 201


@bp.delete("/tokens/<token_id>")
def revoke_token(token_id):
    require_write(actor())
    with tx() as ctx:
        users.revoke_token(ctx, token_id)
    return Response(status=204)


AUDIT_COLUMNS = [{"key": k, "label": k} for k in ("id", "at", "user", "action", "app", "entity", "record",
                                                     "summary", "before", "after")]
MAX_AUDIT_EXPORT = 1_000_000


@bp.get("/audit")
def audit_log():
    args = request.args
    fmt = args.get("format") or "json"
    if fmt not in ("json", "csv"):
        raise ValidationFailed("format must be json or csv / 格式须为 json 或 csv", {"format": ["json or csv"]})
    since = None
    if args.get("since"):
        try:
            since = datetime.fromisoformat(args["since"].replace("Z", "+00:00"))
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
        except ValueError:
            raise ValidationFailed("since must be an ISO 8601 date / 日期格式无效", {"since": ["invalid"]}) from None
    ints = {}
    for key in ("record", "user", "limit", "before"):
        if args.get(key):
            try:
                ints[key] = int(args[key])
            except ValueError:
                raise ValidationFailed(f"{key} must be a whole number / 必须是整数", {key: ["invalid"]}) from None
    filters = {"app": args.get("app") or None, "entity": args.get("entity") or None, "record": ints.get("record"),
               "user": ints.get("user"), "since": since, "action": args.get("action") or None}
    with tx() as ctx:
        users.require_admin(ctx)
        if fmt == "json":
            limit = min(max(ints.get("limit", 100), 1), 1000)
            items = audit.query(ctx.conn, **filters, limit=limit, before_id=ints.get("before"))
            return jsonify({"items": items})
    limit = min(max(ints.get("limit", MAX_AUDIT_EXPORT), 1), MAX_AUDIT_EXPORT)
    body = stream_with_context(rows_to_csv(AUDIT_COLUMNS, _audit_rows(filters, limit, ints.get("before"))))
    return Response(body, mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="audit.csv"'})


def _audit_rows(filters: dict, limit: int, before_id: int | None):
    """Every matching entry, newest first, read in pages of 1000 on a connection of its own."""
    left = limit
    with services().engine.connect() as conn:
        while left > 0:
            page = audit.query(conn, **filters, limit=min(1000, left), before_id=before_id)
            if not page:
                return
            for item in page:
                yield {**item, "before": _json_text(item["before"]), "after": _json_text(item["after"])}
            left -= len(page)
            before_id = page[-1]["id"]


def _json_text(value):
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)
