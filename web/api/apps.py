"""REST: apps, drafts, publish, revisions, diff, restore, the publish plan."""
from __future__ import annotations

from flask import jsonify, request

from builder import store
from builder.diff import diff_apps
from engines.errors import ValidationFailed
from runtime import publish as pub

from ..app import services
from ..auth import actor, tx
from . import bp
from .util import check_token_app, json_body, require_write


@bp.get("/apps")
def list_apps():
    a = actor()
    with tx() as ctx:
        apps = store.list_apps(ctx.conn)
        if not a.can_build:
            apps = [x for x in apps if x["published_revision"] > 0
                    and (x["app"] in a.app_roles or not _has_permissions(ctx, x["app"]))]
    if a.token_apps is not None:
        apps = [x for x in apps if x["app"] in a.token_apps]
    return jsonify({"items": apps, "total": len(apps)})


def _has_permissions(ctx, app_key: str) -> bool:
    """Whether a published app restricts who may use it (read in the caller's transaction)."""
    return bool(services().catalog.get(ctx.conn, app_key).app.permissions)


@bp.post("/apps")
def create_app():
    require_write(actor())
    doc = json_body()
    with tx() as ctx:
        out = pub.create_app(ctx, doc)
    return jsonify(out), 201


@bp.get("/apps/<app_key>/draft")
def get_draft(app_key):
    check_token_app(actor(), app_key)
    with tx() as ctx:
        pub.require_builder(ctx)
        return jsonify(store.get_draft(ctx.conn, app_key))


@bp.put("/apps/<app_key>/draft")
def put_draft(app_key):
    require_write(actor())
    check_token_app(actor(), app_key)
    doc = json_body()
    with tx() as ctx:
        return jsonify(pub.put_draft(ctx, app_key, doc))


@bp.get("/apps/<app_key>/plan")
def plan(app_key):
    check_token_app(actor(), app_key)
    with tx() as ctx:
        return jsonify(pub.plan_draft(ctx, app_key))


@bp.post("/apps/<app_key>/publish")
def publish(app_key):
    require_write(actor())
    check_token_app(actor(), app_key)
    body = json_body(allow_empty=True)
    message = body.get("message") if isinstance(body, dict) else None
    if message is not None and (not isinstance(message, str) or len(message) > 500):
        raise ValidationFailed("message must be text up to 500 characters / 说明最多 500 字", {"message": ["invalid"]})
    with tx() as ctx:
        return jsonify(pub.publish(ctx, services().catalog, app_key, message=message))


@bp.get("/apps/<app_key>/revisions")
def revisions(app_key):
    check_token_app(actor(), app_key)
    with tx() as ctx:
        pub.require_builder(ctx)
        items = store.list_revisions(ctx.conn, app_key)
    return jsonify({"items": items, "total": len(items)})


@bp.get("/apps/<app_key>/revisions/<int:number>")
def revision(app_key, number):
    check_token_app(actor(), app_key)
    with tx() as ctx:
        pub.require_builder(ctx)
        return jsonify(store.get_revision(ctx.conn, app_key, number))


@bp.get("/apps/<app_key>/revisions/<int:number>/diff")
def revision_diff(app_key, number):
    """Diff of revision n against ?against=m (default: the revision before n)."""
    check_token_app(actor(), app_key)
    against = request.args.get("against")
    with tx() as ctx:
        pub.require_builder(ctx)
        new = store.get_revision(ctx.conn, app_key, number)
        if against not in (None, ""):
            try:
                other = int(against)
            except ValueError:
                raise ValidationFailed("against must be a revision number / 版本号无效", {"against": ["invalid"]}) from None
            old = store.get_revision(ctx.conn, app_key, other)
        else:
            other = number - 1
            old = store.get_revision(ctx.conn, app_key, other) if number > 1 else None
    return jsonify({"from": other if old is not None else 0, "to": number, "diff": diff_apps(old, new)})


@bp.post("/apps/<app_key>/revisions/<int:number>/restore")
def restore(app_key, number):
    require_write(actor())
    check_token_app(actor(), app_key)
    with tx() as ctx:
        return jsonify(pub.restore(ctx, services().catalog, app_key, number))
