"""Admin pages that read: the permission matrix of every published app (``/admin/permissions``)
and the audit log with its filters, paging and CSV export link (``/admin/audit``).

The matrix is read from the published metadata (editing stays in the builder, so that a change
is a draft, validated, published and audited like any other metadata change). The audit page
reads ``runtime.audit.query`` (newest first, keyset paging by id) and shows each entry's
before/after as field changes; its export link is ``GET /api/v1/audit?format=csv`` with the
same filters (UTF-8 with BOM, spreadsheet formulas made inert). Admins only: the service's
``users.require_admin`` decides.
"""
from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import render_template, request

from engines.errors import JimuError
from runtime import audit, users
from runtime.permissions import OPS, SCOPES

from .app import services
from .auth import tx
from .i18n import gettext as _
from .pages_admin import bp, published_apps

PAGE_SIZE = 50
MAX_CHANGES = 30
VALUE_CHARS = 300
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def action_labels() -> dict[str, str]:
    return {"create": _("Created"), "update": _("Changed"), "delete": _("Deleted"), "transition": _("Transition"),
            "comment": _("Comment"), "automation": _("Automation"), "rule": _("Rule"), "message": _("Message"),
            "metadata": _("Metadata"), "login": _("Sign-in"), "permission": _("People and permissions"),
            "token": _("API token"), "share": _("Share"), "survey": _("Survey"), "approval": _("Approval"),
            "task": _("Task"), "import": _("Import")}


def scope_labels() -> dict[str, str]:
    return {"none": _("none"), "own": _("own"), "team": _("team"), "all": _("all")}


def local_time(value: Any) -> str:
    """An ISO date-time (or datetime) as wall-clock minutes in the configured time zone."""
    try:
        at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return "" if value is None else str(value)
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    return at.astimezone(ZoneInfo(services().timezone)).strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------- permissions
def _matrix(app) -> list[dict]:
    """The app's permission entries grouped by entity, in entity order ("*" first)."""
    labels = {e.key: e for e in app.entities}
    groups: dict[str, list[dict]] = {}
    for p in app.permissions:
        if isinstance(p, dict):
            groups.setdefault(str(p.get("entity")), []).append(p)
    out = []
    for key in sorted(groups, key=lambda k: (k != "*", list(labels).index(k) if k in labels else len(labels), k)):
        entity = labels.get(key)
        fields = {f.key: f.label for f in entity.fields} if entity else {}
        rows = []
        for p in groups[key]:
            # read the way the permission check reads them: create is yes/no, anything else is none
            rows.append({"role": str(p.get("role")),
                         "ops": {op: ("all" if p.get(op) is True else "none") if op == "create"
                                 else (p.get(op) if p.get(op) in SCOPES else "none") for op in OPS},
                         "hidden": [fields.get(f, f) for f in p.get("hidden") or []],
                         "readonly": [fields.get(f, f) for f in p.get("readonly") or []]})
        out.append({"key": key, "label": _("All entities") if key == "*" else (entity.label if entity else key),
                    "rows": rows})
    return out


@bp.get("/admin/permissions")
def permissions():
    with tx() as ctx:
        users.require_admin(ctx)
        apps = []
        for summary, app in published_apps(ctx):
            named = {p.get("role") for p in app.permissions if isinstance(p, dict)}
            apps.append({"key": summary["app"], "label": summary["label"], "revision": summary["published_revision"],
                         "open": not app.permissions, "entities": _matrix(app),
                         "unused_roles": [r for r in app.roles if r not in named]})
    return render_template("admin_permissions.html", apps=apps, ops=OPS, scopes=scope_labels())


# ---------------------------------------------------------------- audit
def _audit_filters(ctx, args) -> tuple[dict, dict, dict[str, list[str]]]:
    """(form values as typed, filters for ``audit.query``, errors per filter)."""
    form = {k: (args.get(k) or "").strip() for k in ("app", "entity", "record", "user", "since", "action")}
    filters: dict[str, Any] = {"app": form["app"] or None, "entity": form["entity"] or None,
                               "action": form["action"] or None, "record": None, "user": None, "since": None}
    errors: dict[str, list[str]] = {}
    if form["record"]:
        try:
            filters["record"] = int(form["record"])
        except ValueError:
            errors["record"] = [_("Give a record number")]
    if form["user"]:
        row = users.find_user(ctx.conn, form["user"])
        if row is None:
            errors["user"] = [_("No such user")]
        else:
            filters["user"] = row.id
    if form["since"]:
        try:
            day = date.fromisoformat(form["since"])
            filters["since"] = datetime.combine(day, time(0), ZoneInfo(services().timezone))
        except ValueError:
            errors["since"] = [_("Give a date like 2026-01-31")]
    return form, filters, errors


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _value_text(value: Any) -> str:
    """A value as one line: lists of plain values joined with commas, ``{app: [roles]}`` as
    ``app: a, b``, anything else as JSON; cut at ``VALUE_CHARS``."""
    if isinstance(value, str):
        text = value
    elif value is None:
        text = ""
    elif isinstance(value, list) and all(_scalar(v) for v in value):
        text = ", ".join("" if v is None else str(v) for v in value)
    elif isinstance(value, dict) and all(isinstance(v, list) and all(_scalar(x) for x in v) for v in value.values()):
        text = "; ".join(f"{k}: {', '.join(str(x) for x in v)}" for k, v in value.items())
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS] + "…"


def field_changes(before: Any, after: Any, labels: dict[str, str]) -> tuple[list[tuple[str, str, str]], int]:
    """An entry's before/after as (field label, before text, after text), and how many more there are."""
    if not isinstance(before, dict) and not isinstance(after, dict):
        if before is None and after is None:
            return [], 0
        return [("", _value_text(before), _value_text(after))], 0
    before = before if isinstance(before, dict) else {}
    after = after if isinstance(after, dict) else {}
    keys = list(after) + [k for k in before if k not in after]
    rows = [(labels.get(k, k), _value_text(before.get(k)), _value_text(after.get(k)))
            for k in keys if before.get(k) != after.get(k)]
    return rows[:MAX_CHANGES], max(len(rows) - MAX_CHANGES, 0)


def _field_labels(ctx, cache: dict, app: str | None, entity: str | None) -> dict[str, str]:
    if not app or not entity:
        return {}
    if (app, entity) not in cache:
        try:
            e = services().catalog.get(ctx.conn, app).app.entity(entity)
            cache[(app, entity)] = {f.key: f.label for f in e.fields} if e else {}
        except JimuError:
            cache[(app, entity)] = {}
    return cache[(app, entity)]


@bp.get("/admin/audit")
def audit_log():
    before_id = request.args.get("before", "")
    with tx() as ctx:
        users.require_admin(ctx)
        form, filters, errors = _audit_filters(ctx, request.args)
        apps = [(s["app"], s["label"]) for s, _app in published_apps(ctx)]
        items, more = [], False
        if not errors:
            rows = audit.query(ctx.conn, **filters, limit=PAGE_SIZE + 1,
                               before_id=int(before_id) if before_id.isdigit() else None)
            more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
            cache: dict = {}
            for r in rows:
                changes, extra = field_changes(r["before"], r["after"],
                                               _field_labels(ctx, cache, r["app"], r["entity"]))
                items.append({**r, "at_local": local_time(r["at"]), "changes": changes, "more_changes": extra})
    query = {k: v for k, v in form.items() if v}
    export = {"format": "csv", **{k: v for k, v in filters.items() if v is not None and k != "since"}}
    if filters["since"] is not None:
        export["since"] = filters["since"].isoformat()
    labels = action_labels()
    if form["action"] and form["action"] not in labels and KEY_RE.match(form["action"]):
        labels[form["action"]] = form["action"]
    return render_template(
        "admin_audit.html", items=items, form=form, errors=errors, apps=apps, actions=labels,
        export_href="/api/v1/audit?" + urlencode(export),
        older_href=("/admin/audit?" + urlencode({**query, "before": items[-1]["id"]})) if more else None,
        newest_href=("/admin/audit?" + urlencode(query)) if before_id else None), 422 if errors else 200
