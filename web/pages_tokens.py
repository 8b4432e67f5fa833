"""The signed-in user's API tokens page, ``/me/tokens``: list them (revoked ones too), create one
(name, read/write scope, a subset of apps, an optional expiry day; the secret is shown once, on
the answer to the create) and revoke one.

Writes go through the service of ``/api/v1/tokens`` (``users.api_create_token``,
``users.revoke_token``), so the checks and audit entries are the same as over REST.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from flask import flash, redirect, render_template, request, url_for

from engines.errors import ValidationFailed
from runtime import users

from .app import services
from .auth import tx
from .i18n import gettext as _
from .pages import usable_apps
from .pages_admin import FORM_ERRORS, bp, form_error
from .pages_admin_audit import local_time


def _status(token: dict, now: datetime) -> str:
    if token["revoked_at"]:
        return "revoked"
    if token["expires_at"] and datetime.fromisoformat(token["expires_at"]) <= now:
        return "expired"
    return "active"


def _render(form: dict, error: dict | None = None, created: dict | None = None):
    now = datetime.now(UTC)
    with tx() as ctx:
        items = users.list_tokens(ctx.conn, ctx.actor.id, include_revoked=True)
        apps = [(a["app"], a["label"]) for a in usable_apps(ctx)]
    tokens = [{**t, "status": _status(t, now), "expires_local": local_time(t["expires_at"]) if t["expires_at"] else "",
               "created_local": local_time(t["created_at"]),
               "last_used_local": local_time(t["last_used_at"]) if t["last_used_at"] else ""}
              for t in reversed(items)]
    return render_template("my_tokens.html", tokens=tokens, apps=apps, form=form, error=error,
                           created=created), 422 if error else 200


@bp.get("/me/tokens")
def my_tokens():
    return _render({"scope": "read", "apps": []})


@bp.post("/me/tokens")
def create_token():
    form = {"name": request.form.get("name") or "", "scope": request.form.get("scope") or "",
            "apps": request.form.getlist("apps"), "expires": (request.form.get("expires") or "").strip()}
    try:
        with tx() as ctx:
            offered = {a["app"] for a in usable_apps(ctx)}
            unknown = [a for a in form["apps"] if a not in offered]
            if unknown:
                raise ValidationFailed(_("Unknown app: %(apps)s", apps=", ".join(unknown)), {"apps": unknown})
            body: dict[str, Any] = {"name": form["name"], "scope": form["scope"], "apps": form["apps"] or None}
            if form["expires"]:
                try:
                    day = date.fromisoformat(form["expires"])
                except ValueError:
                    raise ValidationFailed(_("Give a date like 2026-01-31"),
                                           {"expires": [_("Give a date like 2026-01-31")]}) from None
                body["expires_at"] = datetime.combine(day, time(0), ZoneInfo(services().timezone)).isoformat()
            created = users.api_create_token(ctx, body)
    except FORM_ERRORS as exc:
        error = form_error(exc)
        if "expires_at" in error["fields"]:
            error["fields"]["expires"] = error["fields"].pop("expires_at")
        return _render(form, error)
    return _render({"scope": "read", "apps": []}, created=created)


@bp.post("/me/tokens/<int:token_id>/revoke")
def revoke_token(token_id):
    with tx() as ctx:
        users.revoke_token(ctx, token_id)
    flash(_("Token revoked"), "ok")
    return redirect(url_for("admin.my_tokens"))
