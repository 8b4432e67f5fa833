"""Runtime pages of the generated apps: an app's home, list views (search, filter bar writing the
expression language, sort, pagination, saved views, bulk edit), the kanban board and my tasks.

The new-record form and the record page (form, timeline, related records: the 360° view) live in
``pages_record``; reports and dashboards in ``pages_reports``. Every view calls the records
service, so what a page shows obeys the same permissions as the REST API.
"""
from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for

from engines.errors import JimuError, NotFound, PermissionDenied, ValidationFailed
from engines.field_types import REGISTRY
from runtime import system_tables as st
from runtime.ids import parse_id

from .app import services
from .auth import tx
from .i18n import gettext as _
from .page_fields import display, editable, layout, record_title, refs_for, state_field, with_state_labels

bp = Blueprint("runtime", __name__)

LIST_COLUMNS = 6
BOARD_LIMIT = 500
QUERY_KEYS = ("q", "filter", "sort", "page_size")


def app_nav(capp) -> dict:
    app = capp.app
    return {"app": app, "entities": app.entities, "reports": app.reports, "dashboards": app.dashboards}


def load_app(ctx, app_key: str):
    return services().catalog.get(ctx.conn, app_key)


def readable_entity(ctx, capp, entity_key: str):
    entity = capp.entity(entity_key)
    access = services().records.access(ctx, capp, entity_key)
    if access.scope("read") == "none":
        raise PermissionDenied(_("You may not read these records"))
    return entity, access


@bp.get("/apps/<app_key>")
def app_home(app_key):
    with tx() as ctx:
        capp = load_app(ctx, app_key)
        counts = {}
        for e in capp.app.entities:
            try:
                counts[e.key] = services().records.list(ctx, app_key, e.key, page_size=1, fields=["id"])["total"]
            except JimuError:
                counts[e.key] = None
    return render_template("app_home.html", counts=counts, **app_nav(capp))


def list_columns(capp, entity, access) -> list:
    """The first fields of the form layout (then the rest), without hidden fields and sub-tables."""
    seen, out = set(), []
    for section in layout(capp.app, entity, access.hidden):
        for f in section.fields:
            if f.key not in seen and f.type != "subtable":
                seen.add(f.key)
                out.append(f)
    fields = with_state_labels(capp.app, entity)
    for f in entity.fields:
        if f.key not in seen and f.key not in access.hidden and f.type != "subtable":
            out.append(fields[f.key])
    return out[:LIST_COLUMNS]


def saved_views(ctx, app_key: str, entity_key: str) -> list[dict]:
    v = st.saved_views
    rows = ctx.conn.execute(sa.select(v).where(v.c.user_id == ctx.actor.id, v.c.app == app_key,
                                               v.c.entity == entity_key).order_by(v.c.name)).mappings()
    return [{"id": r["id"], "name": r["name"], "query": r["query"]} for r in rows]


def current_query(args) -> dict:
    return {k: args.get(k) for k in QUERY_KEYS if args.get(k)}


def filter_fields(entity, access) -> list[dict]:
    """What the friendly filter bar may offer: field key, label, expression type and options."""
    out = [{"key": "id", "label": "ID", "type": "number", "options": []},
           {"key": "created_at", "label": _("Created"), "type": "datetime", "options": []},
           {"key": "updated_at", "label": _("Updated"), "type": "datetime", "options": []}]
    for f in entity.fields:
        if f.key in access.hidden or f.type == "subtable":
            continue
        expr = f.result_type or "number" if f.type == "formula" else REGISTRY[f.type].expr_type
        out.append({"key": f.key, "label": f.label, "type": expr, "field_type": f.type,
                    "options": [{"value": o.value, "label": o.label} for o in f.options]})
    return out


@bp.get("/apps/<app_key>/<entity_key>")
def list_view(app_key, entity_key):
    args = request.args
    error = None
    with tx() as ctx:
        capp = load_app(ctx, app_key)
        entity, access = readable_entity(ctx, capp, entity_key)
        columns = list_columns(capp, entity, access)
        try:
            page_size = min(max(int(args.get("page_size") or 50), 10), 200)
            page = max(int(args.get("page") or 1), 1)
        except ValueError:
            page_size, page = 50, 1
        try:
            out = services().records.list(ctx, app_key, entity_key, filter=args.get("filter") or None,
                                          sort=args.get("sort") or None, page=page, page_size=page_size,
                                          search=args.get("q") or None)
        except (ValidationFailed, PermissionDenied) as exc:
            error = exc.message
            out = {"items": [], "total": 0, "page": 1, "page_size": page_size}
        refs = refs_for(ctx, app_key, capp, entity, out["items"], columns)
        views = saved_views(ctx, app_key, entity_key)
        bulk_fields = [f for f in entity.fields if f.type != "subtable" and editable(f, access, state_field(capp, entity_key))]
    query = current_query(args)
    pages = max((out["total"] + page_size - 1) // page_size, 1)
    select_label = _("Select %(title)s", title="\x00")
    rows = [{"id": r["id"], "cells": [display(c, r.get(c.key), refs) for c in columns],
             "select": select_label.replace("\x00", record_title(entity, r))} for r in out["items"]]
    return render_template(
        "list.html", entity=entity, columns=columns, rows=rows, total=out["total"], page=page,
        pages=pages, error=error, query=query,
        sort=args.get("sort") or "", views=views, can_create=access.scope("create") != "none",
        can_update=access.scope("update") != "none", bulk_fields=bulk_fields,
        filter_data={"fields": filter_fields(entity, access)}, page_url=lambda n: _page_url(query, n),
        sort_url=lambda key: _sort_url(query, key), **app_nav(capp))


def _page_url(query: dict, page: int) -> str:
    return "?" + urlencode({**query, "page": page})


def _sort_url(query: dict, key: str) -> str:
    current = query.get("sort") or ""
    new = f"-{key}" if current == key else key
    return "?" + urlencode({**{k: v for k, v in query.items() if k != "page"}, "sort": new})


@bp.post("/apps/<app_key>/<entity_key>/views")
def save_view(app_key, entity_key):
    name = (request.form.get("name") or "").strip()[:200]
    query = {k: request.form.get(k) for k in QUERY_KEYS if request.form.get(k)}
    with tx() as ctx:
        capp = load_app(ctx, app_key)
        readable_entity(ctx, capp, entity_key)
        if not name:
            flash(_("Give the view a name"), "error")
        else:
            v = st.saved_views
            ctx.conn.execute(v.delete().where(v.c.user_id == ctx.actor.id, v.c.app == app_key,
                                              v.c.entity == entity_key, v.c.name == name))
            ctx.conn.execute(v.insert().values(user_id=ctx.actor.id, app=app_key, entity=entity_key, name=name,
                                               query=urlencode(query)))
            flash(_("View saved"), "ok")
    return redirect(url_for("runtime.list_view", app_key=app_key, entity_key=entity_key) + "?" + urlencode(query))


@bp.post("/apps/<app_key>/<entity_key>/views/<int:view_id>/delete")
def delete_view(app_key, entity_key, view_id):
    with tx() as ctx:
        v = st.saved_views
        if parse_id(view_id) is not None:   # a larger number names no view (and cannot be bound)
            ctx.conn.execute(v.delete().where(v.c.id == view_id, v.c.user_id == ctx.actor.id))
    flash(_("View deleted"), "ok")
    return redirect(url_for("runtime.list_view", app_key=app_key, entity_key=entity_key))


@bp.post("/apps/<app_key>/<entity_key>/bulk")
def bulk_edit(app_key, entity_key):
    """Set one field on the selected records, all or nothing."""
    ids = request.form.getlist("ids")
    field = request.form.get("field") or ""
    raw = request.form.get("value", "")
    back = request.form.get("back") or ""
    target = url_for("runtime.list_view", app_key=app_key, entity_key=entity_key)
    kept = {k: v for k, v in parse_qsl(back) if k in QUERY_KEYS + ("page",)}
    target += "?" + urlencode(kept) if kept else ""
    if not ids or not field:
        flash(_("Choose records and a field first"), "error")
        return redirect(target)
    value = raw if raw.strip() else None
    try:
        with tx() as ctx:
            capp = load_app(ctx, app_key)
            f = capp.entity(entity_key).field(field)
            if f is not None and f.type == "multiselect" and value is not None:
                value = [v.strip() for v in value.split(",") if v.strip()]
            for rid in ids[:500]:
                services().records.update(ctx, app_key, entity_key, rid, {field: value})
        flash(_("Updated %(n)s records", n=len(ids[:500])), "ok")
    except JimuError as exc:
        detail = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in (exc.details or {}).items()) \
            if isinstance(exc.details, dict) else ""
        flash(_("Nothing was changed: %(error)s", error=f"{exc.message} {detail}".strip()), "error")
    return redirect(target)


# ---------------------------------------------------------------- kanban
def board_field(capp, entity, by: str | None):
    """(field, columns [(value, label)], flow spec or None) of the board."""
    flow = capp.app.flow_for(entity.key)
    state = flow.get("state_field") if isinstance(flow, dict) else None
    key = by or state or next((f.key for f in entity.fields if f.type == "select"), None)
    if key is None:
        return None, [], None
    f = entity.field(key)
    if f is None or (f.type != "select" and key != state):
        raise NotFound(_("No select field %(key)s to group by", key=key), {"by": key})
    if key == state:
        states = [(str(s.get("key")), str(s.get("label") or s.get("key"))) for s in flow.get("states") or []
                  if isinstance(s, dict)]
        return f, states or [(o.value, o.label) for o in f.options], flow
    return f, [(o.value, o.label) for o in f.options], None


@bp.get("/apps/<app_key>/<entity_key>/board")
def board(app_key, entity_key):
    with tx() as ctx:
        capp = load_app(ctx, app_key)
        entity, access = readable_entity(ctx, capp, entity_key)
        f, columns, flow = board_field(capp, entity, request.args.get("by") or None)
        selects = [x for x in entity.fields if x.type == "select" and x.key not in access.hidden]
        cards: dict = {value: [] for value, _label in columns}
        extra_fields, refs, truncated = [], {}, False
        if f is not None:
            if f.key in access.hidden:
                raise PermissionDenied(_("You may not read this field"), {"by": f.key})
            out = services().records.list(ctx, app_key, entity_key, sort="-updated_at", page_size=BOARD_LIMIT)
            truncated = out["total"] > BOARD_LIMIT
            extra_fields = [x for x in list_columns(capp, entity, access)
                            if x.key not in (f.key, entity.title_field)][:2]
            refs = refs_for(ctx, app_key, capp, entity, out["items"], extra_fields)
            for rec in out["items"]:
                cards.setdefault(rec.get(f.key) if rec.get(f.key) in cards else "", []).append(rec)
        if "" in cards and not cards[""]:
            cards.pop("")
        movable = f is not None and access.scope("update") != "none" and (flow is not None or f.key not in access.readonly)
    transitions = []
    if flow is not None:
        for t in flow.get("transitions") or []:
            if isinstance(t, dict):
                src = t.get("from")
                transitions.append({"key": t.get("key"), "label": t.get("label") or t.get("key"),
                                    "from": None if src in (None, "*") else ([src] if isinstance(src, str) else src),
                                    "to": t.get("to")})
    labels = dict(columns)
    if "" in cards:
        labels[""] = _("(blank)")
    board_data = {"app": app_key, "entity": entity_key, "field": f.key if f else None, "flow": flow is not None,
                  "transitions": transitions, "columns": [{"value": v, "label": labels[v]} for v in cards]}
    return render_template("board.html", entity=entity, field=f, cards=cards, labels=labels, selects=selects,
                           extra_fields=extra_fields, refs=refs, display=display, title_of=record_title,
                           board_data=board_data, movable=movable, truncated=truncated, **app_nav(capp))


# ---------------------------------------------------------------- my tasks
@bp.get("/tasks")
def tasks():
    t = st.tasks
    with tx() as ctx:
        uid = ctx.actor.id
        open_rows = ctx.conn.execute(sa.select(t).where(t.c.assignee_id == uid, t.c.status == "open")
                                     .order_by(t.c.due_at.is_(None), t.c.due_at, t.c.id).limit(200)).mappings().all()
        done_rows = ctx.conn.execute(sa.select(t).where(t.c.assignee_id == uid, t.c.status != "open")
                                     .order_by(t.c.id.desc()).limit(20)).mappings().all()
        n = st.notifications
        notes = ctx.conn.execute(sa.select(n).where(n.c.user_id == uid).order_by(n.c.id.desc()).limit(20)).mappings().all()
    return render_template("tasks.html", open_tasks=[_task(r) for r in open_rows],
                           done_tasks=[_task(r) for r in done_rows], notifications=[dict(r) for r in notes])


def _task(row) -> dict:
    item = dict(row)
    try:
        item["payload"] = json.loads(row["payload"] or "{}")
    except ValueError:
        item["payload"] = {}
    if row["app"] and row["entity"] and row["record_id"]:
        item["href"] = url_for("runtime.record_page", app_key=row["app"], entity_key=row["entity"],
                               record_id=row["record_id"])
    return item


from . import pages_record, pages_reports  # noqa: E402,F401  (routes register on this blueprint)
