"""Builder pages (admins and builders): the app list, an app's overview (entities, forms, rules,
flows, reports, dashboards, revisions with diff and restore) and the drag-and-drop form designer.

The designer itself is an ES module (``static/designer.js``) that edits the draft in the browser
and saves it through ``PUT /api/v1/apps/{app}/draft``; publishing reads the plan
(``GET /api/v1/apps/{app}/plan``) and posts ``/publish``. These views only read the store and
hand the draft to the page as JSON.

Extension point: ``SECTION_EDITORS`` maps a spec section (rules, flows, reports, dashboards,
calendars) to the endpoint of its editor page. Until an engine registers an editor its section
is listed read-only (the specs as JSON with their validation errors).
"""
from __future__ import annotations

import re

from flask import Blueprint, flash, redirect, render_template, request, url_for

from builder import store
from builder.diff import diff_apps
from builder.validation import RESERVED_FIELD_KEYS, validate_app
from engines.errors import DefinitionError, JimuError, NotFound
from engines.field_types import REGISTRY
from runtime import publish as pub

from .app import services
from .auth import tx
from .i18n import gettext as _

bp = Blueprint("builder", __name__)

SPEC_SECTIONS = ("rules", "flows", "calendars", "reports", "dashboards", "permissions")
SECTION_EDITORS: dict[str, str] = {}   # section -> endpoint of its editor (registered by each engine's pages)
KEY_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def field_types() -> list[dict]:
    """The designer's palette: every registered field type."""
    return [{"name": name, "en": ft.label[0] or name, "zh": ft.label[1] or name, "widget": ft.widget,
             "computed": ft.computed} for name, ft in REGISTRY.items()]


@bp.route("/builder", methods=["GET", "POST"])
def apps():
    errors, form = [], {}
    if request.method == "POST":
        form = {"app": (request.form.get("app") or "").strip(), "label": (request.form.get("label") or "").strip()}
        try:
            with tx() as ctx:
                doc = {"app": form["app"], "label": form["label"] or form["app"], "entities": []}
                pub.create_app(ctx, doc)
            flash(_("App created"), "ok")
            return redirect(url_for("builder.app_page", app_key=form["app"]))
        except DefinitionError as exc:
            errors = exc.details if isinstance(exc.details, list) else [{"location": "app", "message": exc.message}]
        except JimuError as exc:
            if exc.status != 409:
                raise
            errors = [{"location": "app", "message": exc.message}]
    with tx() as ctx:
        pub.require_builder(ctx)
        items = store.list_apps(ctx.conn)
        for item in items:
            item["unpublished"] = store.has_unpublished_changes(ctx.conn, item["app"])
    return render_template("builder_apps.html", apps=items, errors=errors, form=form), 422 if errors else 200


def _section_errors(errors: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for e in errors:
        head = re.split(r"[.\[]", str(e.get("location") or ""), maxsplit=1)[0] or "app"
        out.setdefault(head, []).append(e)
    return out


@bp.get("/builder/<app_key>")
def app_page(app_key):
    with tx() as ctx:
        pub.require_builder(ctx)
        draft = store.get_draft(ctx.conn, app_key)
        revisions = store.list_revisions(ctx.conn, app_key)
        unpublished = store.has_unpublished_changes(ctx.conn, app_key)
        tokens = pub.public_form_tokens(ctx.conn, app_key)
    errors = validate_app(draft)
    sections = {name: draft.get(name) or [] for name in SPEC_SECTIONS}
    return render_template("builder_app.html", draft=draft, app_key=app_key, revisions=revisions,
                           unpublished=unpublished, errors=_section_errors(errors), all_errors=errors,
                           sections=sections, editors=SECTION_EDITORS, tokens=tokens,
                           page_data={"app": app_key, "unpublished": unpublished})


def _entity_key_from(label: str) -> str:
    key = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    return key if KEY_RE.match(key or "") else ""


@bp.post("/builder/<app_key>/entities")
def add_entity(app_key):
    label = (request.form.get("label") or "").strip()[:200]
    key = (request.form.get("key") or "").strip() or _entity_key_from(label)
    try:
        with tx() as ctx:
            draft = store.get_draft(ctx.conn, app_key)
            if not key:
                raise DefinitionError(_("Give the entity a key"), [{"location": "key", "message": _("Give the entity a key")}])
            title = "name"
            entity = {"key": key, "label": label or key, "title_field": title,
                      "fields": [{"key": title, "type": "text", "label": _("Name"), "required": True}]}
            draft.setdefault("entities", []).append(entity)
            forms = draft.setdefault("forms", [])
            form_key = _free_form_key(forms, key)
            forms.append({"key": form_key, "entity": key, "label": label or key,
                          "layout": [{"section": label or key, "columns": 1, "fields": [title]}]})
            pub.put_draft(ctx, app_key, draft)
    except DefinitionError as exc:
        details = exc.details if isinstance(exc.details, list) else []
        flash(_("The entity was not added: %(error)s", error="; ".join(
            f"{d.get('location')}: {d.get('message')}" for d in details) or exc.message), "error")
        return redirect(url_for("builder.app_page", app_key=app_key))
    return redirect(url_for("builder.designer", app_key=app_key, entity_key=key))


def _free_form_key(forms: list, entity_key: str) -> str:
    taken = {f.get("key") for f in forms if isinstance(f, dict)}
    base = f"{entity_key}_form"[:36]
    key, n = base, 2
    while key in taken:
        key, n = f"{base}{n}", n + 1
    return key


@bp.get("/builder/<app_key>/revisions/<int:number>")
def revision_page(app_key, number):
    with tx() as ctx:
        pub.require_builder(ctx)
        new = store.get_revision(ctx.conn, app_key, number)
        old = store.get_revision(ctx.conn, app_key, number - 1) if number > 1 else None
        info = next((r for r in store.list_revisions(ctx.conn, app_key) if r["number"] == number), {})
    diff = diff_apps(old, new)
    return render_template("builder_revision.html", app_key=app_key, number=number, diff=diff, info=info,
                           label=new.get("label") or app_key)


@bp.post("/builder/<app_key>/revisions/<int:number>/restore")
def restore(app_key, number):
    with tx() as ctx:
        out = pub.restore(ctx, services().catalog, app_key, number)
    flash(_("Revision %(n)s restored as revision %(m)s", n=number, m=out["revision"]), "ok")
    return redirect(url_for("builder.app_page", app_key=app_key))


@bp.get("/builder/<app_key>/<entity_key>")
def designer(app_key, entity_key):
    with tx() as ctx:
        pub.require_builder(ctx)
        draft = store.get_draft(ctx.conn, app_key)
        unpublished = store.has_unpublished_changes(ctx.conn, app_key)
        latest = store.latest_revision(ctx.conn, app_key)
    published = next((e for e in (latest[1] if latest else {}).get("entities") or [] if e.get("key") == entity_key), {})
    entity = next((e for e in draft.get("entities") or [] if e.get("key") == entity_key), None)
    if entity is None:
        raise NotFound(_("No such entity in the draft"), {"entity": entity_key})
    data = {"app": app_key, "entity": entity_key, "draft": draft, "types": field_types(),
            "unpublished": unpublished, "reserved": sorted(RESERVED_FIELD_KEYS),
            "published_ids": [f.get("id") for f in published.get("fields") or [] if f.get("id")],
            "urls": {"draft": f"/api/v1/apps/{app_key}/draft", "plan": f"/api/v1/apps/{app_key}/plan",
                     "publish": f"/api/v1/apps/{app_key}/publish", "check": "/api/v1/expressions/check",
                     "form": f"/apps/{app_key}/{entity_key}/new"}}
    return render_template("builder_designer.html", app_key=app_key, entity=entity, draft=draft,
                           designer_data=data, unpublished=unpublished)


from . import pages_editors  # noqa: E402,F401  (registers the rules, workflow and report editors)
