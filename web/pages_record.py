"""The generated record form and the record page.

``/apps/{app}/{entity}/new`` renders the entity's first form layout (else every field) and creates
a record through the records service; errors come back next to their fields (``aria-invalid``,
``role=alert``) with what the user typed kept. ``/apps/{app}/{entity}/{id}`` is the record page: the
same form for editing, the workflow's transitions, the timeline, and the records that point at
this one through lookups (the latest 10 of each kind, with a link to all) — for a customer, the
360° view.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlencode

from flask import flash, redirect, render_template, request, url_for

from engines.errors import JimuError, PermissionDenied, ValidationFailed
from runtime import audit

from .app import services
from .auth import tx
from .i18n import gettext as _
from .page_fields import (
    display,
    editable,
    input_value,
    layout,
    parse_form,
    picker_choices,
    record_title,
    refs_for,
    state_field,
    widget,
    with_state_labels,
)
from .pages_runtime import app_nav, bp, load_app, readable_entity

RELATED_LIMIT = 10


def _form_context(ctx, app_key, capp, entity, access, values: dict, errors: dict, *, record=None, preset=None):
    state = state_field(capp, entity.key)
    sections = layout(capp.app, entity, access.hidden)
    shown = [f for s in sections for f in s.fields]
    can_edit = {f.key: editable(f, access, state) for f in shown}
    refs = refs_for(ctx, app_key, capp, entity, [record], shown) if record else {}
    shown_keys = {f.key for f in shown}
    grouped: dict[str, list[str]] = {}
    other: dict[str, list[str]] = {}
    for key, msgs in errors.items():
        base = re.split(r"[\[.]", key, maxsplit=1)[0]
        if base in shown_keys:
            grouped.setdefault(base, []).extend(msgs)
        else:
            other.setdefault(key, []).extend(msgs)
    return {"sections": sections, "values": values, "errors": grouped, "other_errors": other, "can_edit": can_edit,
            "choices": picker_choices(ctx, app_key, capp, [f for f in shown if can_edit[f.key]]),
            "widget": widget, "display": display, "refs": refs, "record": record, "entity": entity,
            "shown_record": record or preset,
            "conditions": {f.key: {k: getattr(f, k) for k in ("visible_if", "required_if") if getattr(f, k)}
                           for f in shown if f.visible_if or f.required_if},
            **app_nav(capp)}


def _error_map(exc: JimuError) -> tuple[dict, str]:
    """Field -> messages (for the inputs) and the message for the top of the form."""
    details = exc.details if isinstance(exc.details, dict) else {}
    fields = {str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in details.items()}
    return fields, exc.message


@bp.route("/apps/<app_key>/<entity_key>/new", methods=["GET", "POST"])
def new_record(app_key, entity_key):
    status, errors, message, posted = 200, {}, None, None
    if request.method == "POST":
        try:
            with tx() as ctx:
                posted = _posted_body(ctx, app_key, entity_key)
                rec = services().records.create(ctx, app_key, entity_key, posted)
            flash(_("Saved"), "ok")
            return redirect(url_for("runtime.record_page", app_key=app_key, entity_key=entity_key, record_id=rec["id"]))
        except (ValidationFailed, PermissionDenied) as exc:
            if posted is None:
                raise
            errors, message = _error_map(exc)
            status = exc.status
    with tx() as ctx:
        capp = load_app(ctx, app_key)
        entity, access = readable_entity(ctx, capp, entity_key)
        if access.scope("create") == "none":
            raise PermissionDenied(_("You may not create these records"))
        if posted is not None:
            values = {k: _posted_value(v) for k, v in posted.items()}
        else:
            values = {f.key: input_value(f, f.default) for f in entity.fields if f.default is not None}
        flow = capp.app.flow_for(entity_key)
        shown = {flow.get("state_field"): flow.get("initial")} if isinstance(flow, dict) else None
        context = _form_context(ctx, app_key, capp, entity, access, values, errors, preset=shown)
    return render_template("record_form.html", message=message, mode="new", **context), status


def _posted_body(ctx, app_key: str, entity_key: str) -> dict:
    """The body a record form posts: the values of the fields this user may edit in its layout."""
    capp = load_app(ctx, app_key)
    entity, access = readable_entity(ctx, capp, entity_key)
    state = state_field(capp, entity_key)
    fields = [f for s in layout(capp.app, entity, access.hidden) for f in s.fields if editable(f, access, state)]
    return parse_form(fields, request.form)


def _posted_value(value):
    return value if isinstance(value, (list, type(None))) else str(value)


@bp.route("/apps/<app_key>/<entity_key>/<int:record_id>", methods=["GET", "POST"])
def record_page(app_key, entity_key, record_id):
    status, errors, message, posted = 200, {}, None, None
    if request.method == "POST":
        try:
            with tx() as ctx:
                posted = _posted_body(ctx, app_key, entity_key)
                services().records.update(ctx, app_key, entity_key, record_id, posted,
                                          if_match=request.form.get("_version") or None)
            flash(_("Saved"), "ok")
            return redirect(url_for("runtime.record_page", app_key=app_key, entity_key=entity_key, record_id=record_id))
        except (ValidationFailed, PermissionDenied) as exc:
            if posted is None:
                raise
            errors, message = _error_map(exc)
            status = exc.status
        except JimuError as exc:
            if posted is None or exc.status != 409:
                raise
            message, status = exc.message, 409
    with tx() as ctx:
        capp = load_app(ctx, app_key)
        entity, access = readable_entity(ctx, capp, entity_key)
        rec = services().records.get(ctx, app_key, entity_key, record_id)
        values = {f.key: input_value(f, rec.get(f.key)) for f in entity.fields}
        if posted is not None:
            values.update({k: _posted_value(v) for k, v in posted.items()})
        context = _form_context(ctx, app_key, capp, entity, access, values, errors, record=rec)
        items = audit.timeline(ctx.conn, app_key, entity_key, rec["id"], hidden=access.hidden, limit=100)
        related = related_records(ctx, app_key, capp, entity, rec["id"])
        owner_names = refs_for(ctx, app_key, capp, entity, [rec], [])
    can_update = access.scope("update") != "none"
    context["can_edit"] = {k: v and can_update for k, v in context["can_edit"].items()}
    return render_template("record_page.html", message=message, mode="edit", title=record_title(entity, rec),
                           timeline=[timeline_item(with_state_labels(capp.app, entity), i, capp.tz) for i in items], related=related,
                           transitions=transitions_for(capp, entity_key, rec), can_update=can_update,
                           can_delete=access.scope("delete") != "none", owner=owner_names.get(("owner", rec.get("owner"))),
                           **context), status


@bp.post("/apps/<app_key>/<entity_key>/<int:record_id>/delete")
def delete_record(app_key, entity_key, record_id):
    try:
        with tx() as ctx:
            services().records.delete(ctx, app_key, entity_key, record_id)
    except JimuError as exc:
        if exc.status not in (403, 409):
            raise
        flash(exc.message, "error")
        return redirect(url_for("runtime.record_page", app_key=app_key, entity_key=entity_key, record_id=record_id))
    flash(_("Deleted"), "ok")
    return redirect(url_for("runtime.list_view", app_key=app_key, entity_key=entity_key))


def related_records(ctx, app_key: str, capp, entity, rid: int) -> list[dict]:
    """Per lookup that points at this entity: the latest readable records, their total and a link."""
    out = []
    for other in capp.app.entities:
        for f in other.fields:
            if f.type != "lookup" or f.target != entity.key:
                continue
            expr = f"{f.key} == {int(rid)}"
            try:
                access = services().records.access(ctx, capp, other.key)
                if access.scope("read") == "none" or f.key in access.hidden:
                    continue
                page = services().records.list(ctx, app_key, other.key, filter=expr, sort="-created_at",
                                               page_size=RELATED_LIMIT)
            except JimuError:
                continue
            from .pages_runtime import list_columns
            columns = [c for c in list_columns(capp, other, access) if c.key != f.key][:3]
            out.append({"entity": other, "via": f, "items": page["items"], "total": page["total"],
                        "columns": columns, "refs": refs_for(ctx, app_key, capp, other, page["items"], columns),
                        "href": url_for("runtime.list_view", app_key=app_key, entity_key=other.key)
                        + "?" + urlencode({"filter": expr})})
    return out


KIND_LABELS = {"create": "Created", "update": "Changed", "delete": "Deleted", "transition": "Transition",
               "comment": "Comment", "message": "Message", "rule": "Rule", "survey": "Survey"}


def timeline_item(fields: dict, item: dict, tz) -> dict:
    """A timeline entry with its changes as (label, before, after) text, its time in the app's zone."""
    details = item.get("details") if isinstance(item.get("details"), dict) else {}
    before = details.get("before") if isinstance(details.get("before"), dict) else {}
    after = details.get("after") if isinstance(details.get("after"), dict) else {}
    changes = []
    if item["kind"] != "create":
        for key in list(after) or list(before):
            f = fields.get(key)
            label = f.label if f else key
            fmt = (lambda v, f=f: display(f, v)) if f else (lambda v: "" if v is None else str(v))
            changes.append((label, fmt(before.get(key)), fmt(after.get(key))))
    comment = details.get("comment") if isinstance(details.get("comment"), str) else None
    try:
        at = datetime.fromisoformat(item["at"])
        at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(tz).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        at = str(item.get("at"))[:16]
    return {"at": at, "by": item.get("by") or _("system"),
            "kind": item["kind"], "kind_label": _(KIND_LABELS.get(item["kind"], "Event")),
            "summary": item.get("summary") or "", "changes": changes[:30], "comment": comment}


def transitions_for(capp, entity_key: str, rec: dict) -> list[dict]:
    """The flow's transitions that leave the record's current state (guards are checked on click)."""
    flow = capp.app.flow_for(entity_key)
    if not isinstance(flow, dict):
        return []
    current = rec.get(flow.get("state_field"))
    finals = {s.get("key") for s in flow.get("states") or [] if isinstance(s, dict) and s.get("final")}
    out = []
    for t in flow.get("transitions") or []:
        if not isinstance(t, dict):
            continue
        src = t.get("from")
        sources = None if src in (None, "*") else ([src] if isinstance(src, str) else list(src))
        if (sources is None and current not in finals) or (sources is not None and current in sources):
            out.append({"key": str(t.get("key")), "label": str(t.get("label") or t.get("key")), "to": t.get("to")})
    return out


def state_label(capp, entity_key: str, value) -> str:
    flow = capp.app.flow_for(entity_key) or {}
    for s in flow.get("states") or []:
        if isinstance(s, dict) and s.get("key") == value:
            return str(s.get("label") or value)
    return "" if value is None else str(value)
