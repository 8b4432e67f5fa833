"""The builder's section editors: rules (with the simulate panel), workflows (states, transitions,
SLA policies, calendars) and reports (with live preview) plus dashboard layout.

Each page hands the draft and the entities' fields to its ES module (``rule_editor.js``,
``flow_editor.js``, ``report_editor.js``), which edits the draft in the browser and saves it
through ``PUT /api/v1/apps/{app}/draft``. Registered in ``pages_builder.SECTION_EDITORS``.
"""
from __future__ import annotations

from flask import render_template

from builder import store
from engines.field_types import REGISTRY
from engines.reports import CHARTS
from runtime import publish as pub

from .auth import tx
from .i18n import gettext as _
from .pages_builder import SECTION_EDITORS, bp


def _entities(draft: dict) -> list[dict]:
    out = []
    for e in draft.get("entities") or []:
        if not isinstance(e, dict) or not isinstance(e.get("key"), str):
            continue
        fields = []
        for f in e.get("fields") or []:
            if not isinstance(f, dict) or not isinstance(f.get("key"), str):
                continue
            ft = REGISTRY.get(str(f.get("type")))
            options = [{"value": str(o.get("value")), "label": str(o.get("label") or o.get("value"))}
                       if isinstance(o, dict) else {"value": str(o), "label": str(o)} for o in f.get("options") or []]
            fields.append({"key": f["key"], "type": f.get("type"), "label": f.get("label") or f["key"],
                           "options": options, "computed": bool(ft and ft.computed)})
        out.append({"key": e["key"], "label": e.get("label") or e["key"], "fields": fields})
    return out


def _page(app_key: str, template: str, title: str, **extra):
    with tx() as ctx:
        pub.require_builder(ctx)
        draft = store.get_draft(ctx.conn, app_key)
        unpublished = store.has_unpublished_changes(ctx.conn, app_key)
        published = store.latest_revision(ctx.conn, app_key) is not None
    data = {"app": app_key, "draft": draft, "entities": _entities(draft), "published": published, **extra}
    return render_template(template, app_key=app_key, draft=draft, unpublished=unpublished, published=published,
                           editor_title=title, editor_data=data)


@bp.get("/builder/<app_key>/edit/rules")
def rules_editor(app_key):
    return _page(app_key, "builder_rules.html", _("Rules"))


@bp.get("/builder/<app_key>/edit/flows")
def flows_editor(app_key):
    return _page(app_key, "builder_flows.html", _("Workflows"))


@bp.get("/builder/<app_key>/edit/reports")
def reports_editor(app_key):
    return _page(app_key, "builder_reports.html", _("Reports"), charts=sorted(CHARTS))


SECTION_EDITORS.update({"rules": "builder.rules_editor", "flows": "builder.flows_editor",
                        "calendars": "builder.flows_editor", "reports": "builder.reports_editor",
                        "dashboards": "builder.reports_editor"})
