"""Admin pages for people at ``/admin/people``: users (platform role, teams, app roles, password
reset, disable/enable, sign out everywhere) and teams (label, members, supervisor, parent team).

Every view first asks the service whether the signed-in user is an admin
(``users.require_admin``: anyone else gets the 403 page, before any form is parsed), then calls
the same service functions as the REST API (``api_create_user``, ``api_update_user``,
``api_create_team``, ``api_update_team``, ``sign_out_everywhere``), so validation, the
admin-only check and the audit entries of permission changes are theirs. A refused write
re-renders the form with the message and what was typed (never a password); its transaction is
rolled back, so nothing is written.

The permission matrix and the audit log live in ``pages_admin_audit``, the signed-in user's API
tokens in ``pages_tokens``; both add their routes to this blueprint.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from builder import store
from engines.errors import Conflict, JimuError, ValidationFailed
from runtime import users

from .app import services
from .auth import tx
from .i18n import gettext as _

bp = Blueprint("admin", __name__)

FORM_ERRORS = (ValidationFailed, Conflict)


def role_labels() -> dict[str, str]:
    return {"admin": _("Admin"), "builder": _("Builder"), "user": _("User")}


def form_error(exc: JimuError) -> dict:
    """A refused write as the form shows it: the message, and the messages per form field."""
    fields: dict[str, list[str]] = {}
    if isinstance(exc.details, dict):
        for key, value in exc.details.items():
            fields[str(key)] = [str(v) for v in (value if isinstance(value, list) else [value])]
    return {"message": exc.message, "fields": fields}


def published_apps(ctx) -> list[tuple[dict, Any]]:
    """(summary, App metadata) of every published app whose metadata loads."""
    out = []
    for summary in store.list_apps(ctx.conn):
        if summary["published_revision"] <= 0:
            continue
        try:
            out.append((summary, services().catalog.get(ctx.conn, summary["app"]).app))
        except JimuError:
            continue
    return out


def app_role_choices(ctx) -> list[dict]:
    """Per published app, the app roles a user may be granted there: the app's declared ``roles``
    and every role its ``permissions`` name."""
    out = []
    for summary, app in published_apps(ctx):
        roles: list[str] = []
        for role in list(app.roles) + [p.get("role") for p in app.permissions if isinstance(p, dict)]:
            if isinstance(role, str) and role not in roles:
                roles.append(role)
        if roles:
            out.append({"app": summary["app"], "label": summary["label"], "roles": roles})
    return out


def _offered(choices: list[dict]) -> set[tuple[str, str]]:
    return {(c["app"], r) for c in choices for r in c["roles"]}


def _posted_app_roles(values: list[str], choices: list[dict]) -> dict[str, list[str]]:
    offered, out, unknown = _offered(choices), {}, []
    for value in values:
        app, _sep, role = value.partition(":")
        if (app, role) in offered:
            out.setdefault(app, []).append(role)
        else:
            unknown.append(value)
    if unknown:
        raise ValidationFailed(_("Unknown app role: %(roles)s", roles=", ".join(unknown)), {"app_roles": unknown})
    return out


def _norm_roles(app_roles: dict) -> dict[str, list[str]]:
    return {app: sorted(set(roles)) for app, roles in sorted(app_roles.items()) if roles}


def _user_form(src) -> dict:
    return {"name": (src.get("name") or "").strip(), "display_name": src.get("display_name") or "",
            "email": (src.get("email") or "").strip(), "role": src.get("role") or "",
            "teams": src.getlist("teams"), "app_roles": src.getlist("app_roles"), "active": src.get("active") == "1"}


def _user_form_of(user: dict) -> dict:
    return {"name": user["name"], "display_name": user["display_name"] or "", "email": user["email"] or "",
            "role": user["role"], "teams": list(user["teams"]), "active": user["active"],
            "app_roles": [f"{app}:{r}" for app, roles in user["app_roles"].items() for r in roles]}


def _render_user(form: dict, error: dict | None, user: dict | None = None):
    with tx() as ctx:
        users.require_admin(ctx)
        choices = app_role_choices(ctx)
        teams = users.list_teams(ctx.conn)
    offered = _offered(choices)
    kept = {} if user is None else {app: [r for r in roles if (app, r) not in offered]
                                    for app, roles in user["app_roles"].items()}
    return render_template("admin_user_form.html", form=form, error=error, user=user, teams=teams,
                           choices=choices, kept={k: v for k, v in kept.items() if v},
                           roles=role_labels()), 422 if error else 200


@bp.get("/admin/people")
def people():
    with tx() as ctx:
        users.require_admin(ctx)
        items = users.list_users(ctx.conn)
        teams = users.list_teams(ctx.conn)
    return render_template("admin_people.html", users=items, teams=teams, roles=role_labels())


@bp.route("/admin/people/users/new", methods=["GET", "POST"])
def user_new():
    form, error = {"role": "user", "teams": [], "app_roles": [], "active": True}, None
    if request.method == "POST":
        form = _user_form(request.form)
        try:
            with tx() as ctx:
                users.require_admin(ctx)
                body: dict[str, Any] = {"name": form["name"], "role": form["role"], "teams": form["teams"],
                                        "app_roles": _posted_app_roles(form["app_roles"], app_role_choices(ctx))}
                if request.form.get("password"):
                    body["password"] = request.form["password"]
                if form["display_name"].strip():
                    body["display_name"] = form["display_name"]
                if form["email"]:
                    body["email"] = form["email"]
                user = users.api_create_user(ctx, body)
            flash(_("User %(name)s added", name=user["name"]), "ok")
            return redirect(url_for("admin.people"))
        except FORM_ERRORS as exc:
            error = form_error(exc)
    return _render_user(form, error)


@bp.route("/admin/people/users/<int:uid>", methods=["GET", "POST"])
def user_edit(uid):
    with tx() as ctx:
        users.require_admin(ctx)
        current = users.get_user(ctx.conn, uid)
    form, error = _user_form_of(current), None
    if request.method == "POST":
        form = {**_user_form(request.form), "name": current["name"]}
        try:
            with tx() as ctx:
                users.require_admin(ctx)
                current = users.get_user(ctx.conn, uid)
                body = _update_body(current, form, request.form.get("password") or "", app_role_choices(ctx))
                if body:
                    users.api_update_user(ctx, uid, body)
            flash(_("User %(name)s saved", name=current["name"]) if body else _("Nothing changed"), "ok")
            return redirect(url_for("admin.people"))
        except FORM_ERRORS as exc:
            error = form_error(exc)
    return _render_user(form, error, current)


def _update_body(current: dict, form: dict, password: str, choices: list[dict]) -> dict:
    """Only what changed: a role or an active flag sent unchanged would still sign the user out."""
    offered = _offered(choices)
    roles = _posted_app_roles(form["app_roles"], choices)
    for app, kept in current["app_roles"].items():     # roles this page does not offer are kept
        roles.setdefault(app, []).extend(r for r in kept if (app, r) not in offered)
    body: dict[str, Any] = {}
    if form["role"] != current["role"]:
        body["role"] = form["role"]
    if form["active"] != current["active"]:
        body["active"] = form["active"]
    if set(form["teams"]) != set(current["teams"]):
        body["teams"] = form["teams"]
    if _norm_roles(roles) != _norm_roles(current["app_roles"]):
        body["app_roles"] = _norm_roles(roles)
    display = form["display_name"] if form["display_name"].strip() else current["name"]
    if display != (current["display_name"] or current["name"]):
        body["display_name"] = display
    if form["email"] != (current["email"] or ""):
        body["email"] = form["email"] or None
    if password:
        body["password"] = password
    return body


@bp.post("/admin/people/users/<int:uid>/sign-out")
def user_sign_out(uid):
    with tx() as ctx:
        user = users.sign_out_everywhere(ctx, uid)
    flash(_("%(name)s was signed out everywhere", name=user["name"]), "ok")
    return redirect(url_for("admin.user_edit", uid=uid))


# ---------------------------------------------------------------- teams
def _team_form(src) -> dict:
    return {"key": (src.get("key") or "").strip(), "label": src.get("label") or "",
            "members": src.getlist("members"), "supervisor": src.get("supervisor") or "",
            "parent": src.get("parent") or ""}


def _render_team(form: dict, error: dict | None, team: dict | None = None):
    with tx() as ctx:
        users.require_admin(ctx)
        people_ = users.list_users(ctx.conn)
        teams = [t for t in users.list_teams(ctx.conn) if team is None or t["key"] != team["key"]]
    return render_template("admin_team_form.html", form=form, error=error, team=team, users=people_,
                           teams=teams), 422 if error else 200


@bp.route("/admin/people/teams/new", methods=["GET", "POST"])
def team_new():
    form, error = {"members": []}, None
    if request.method == "POST":
        form = _team_form(request.form)
        body: dict[str, Any] = {"key": form["key"], "members": form["members"]}
        for k in ("label", "supervisor", "parent"):
            if form[k].strip():
                body[k] = form[k]
        try:
            with tx() as ctx:
                team = users.api_create_team(ctx, body)
            flash(_("Team %(name)s added", name=team["label"] or team["key"]), "ok")
            return redirect(url_for("admin.people"))
        except FORM_ERRORS as exc:
            error = form_error(exc)
    return _render_team(form, error)


@bp.route("/admin/people/teams/<key>", methods=["GET", "POST"])
def team_edit(key):
    with tx() as ctx:
        users.require_admin(ctx)
        current = users.get_team(ctx.conn, key)
    form, error = {**current, "supervisor": current["supervisor"] or "", "parent": current["parent"] or ""}, None
    if request.method == "POST":
        form = {**_team_form(request.form), "key": key}
        body: dict[str, Any] = {}
        label = form["label"] if form["label"].strip() else key
        if label != current["label"]:
            body["label"] = label
        if set(form["members"]) != set(current["members"]):
            body["members"] = form["members"]
        for k in ("supervisor", "parent"):
            if (form[k] or None) != current[k]:
                body[k] = form[k] or None
        try:
            with tx() as ctx:
                users.require_admin(ctx)
                if body:
                    users.api_update_team(ctx, key, body)
            flash(_("Team %(name)s saved", name=label) if body else _("Nothing changed"), "ok")
            return redirect(url_for("admin.people"))
        except FORM_ERRORS as exc:
            error = form_error(exc)
    return _render_team(form, error, current)


from . import pages_admin_audit, pages_tokens  # noqa: E402,F401  (register their routes on bp)
