"""Server-rendered pages: sign-in, the app launcher, error pages, and the registration of the
runtime pages (``pages_runtime``) and the builder pages (``pages_builder``).

Each view parses input, calls a service and renders a Jinja2 template (autoescaped). Every page
answer carries a Content-Security-Policy that allows nothing from other hosts and no inline
script, so that a page can only ever run our own ES modules.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Flask, g, redirect, render_template, request, url_for
from flask_login import login_user, logout_user

from builder import store
from engines.errors import JimuError, RateLimited, Unauthorized
from runtime import system_tables as st
from runtime import users
from runtime.context import Actor

from .app import services
from .auth import SessionUser, client_address, tx

bp = Blueprint("pages", __name__)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
       "frame-ancestors 'none'")


def register_pages(app: Flask) -> None:
    from .i18n import init_i18n
    from .pages_builder import bp as builder_bp
    from .pages_runtime import bp as runtime_bp

    init_i18n(app)
    app.register_blueprint(bp)
    app.register_blueprint(runtime_bp)
    app.register_blueprint(builder_bp)

    @app.after_request
    def _headers(resp):
        if not request.path.startswith(("/api/", "/public/")):
            resp.headers.setdefault("Content-Security-Policy", CSP)
            resp.headers.setdefault("X-Content-Type-Options", "nosniff")
            resp.headers.setdefault("Referrer-Policy", "same-origin")
            if resp.mimetype == "text/html":
                resp.headers.setdefault("Cache-Control", "no-store")
        return resp


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("pages.home")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    error, status = None, 200
    if request.method == "POST":
        name = request.form.get("username", "")
        try:
            # sign_in commits the attempt before refusing: a failure must count towards throttling
            actor, version = users.sign_in(services().engine, name, request.form.get("password", ""), client_address())
            login_user(SessionUser(actor.id, version))
            return redirect(_safe_next(request.args.get("next")))
        except RateLimited as exc:
            error, status = exc.message, 429
        except Unauthorized as exc:
            error, status = exc.message, 401
    return render_template("login.html", error=error), status


@bp.post("/logout")
def logout():
    logout_user()
    return redirect(url_for("pages.login"))


def usable_apps(ctx) -> list[dict]:
    """The published apps this user can use (the same rule as ``GET /api/v1/apps``)."""
    apps = [a for a in store.list_apps(ctx.conn) if a["published_revision"] > 0]
    a = ctx.actor
    if a.is_admin:
        return apps
    out = []
    for x in apps:
        if x["app"] in a.app_roles:
            out.append(x)
            continue
        try:
            if not services().catalog.get(ctx.conn, x["app"]).app.permissions:
                out.append(x)
        except JimuError:
            continue
    return out


@bp.get("/")
def home():
    with tx() as ctx:
        apps = usable_apps(ctx)
        uid = ctx.actor.id
        t, n = st.tasks, st.notifications
        open_tasks = ctx.conn.execute(sa.select(sa.func.count()).select_from(t).where(
            t.c.assignee_id == uid, t.c.status == "open")).scalar_one()
        notes = ctx.conn.execute(sa.select(n).where(n.c.user_id == uid).order_by(n.c.id.desc()).limit(10)).mappings().all()
    return render_template("home.html", apps=apps, open_tasks=open_tasks, notifications=[dict(r) for r in notes])


@bp.get("/healthz")
def healthz():
    return {"ok": True}


def error_page(exc: JimuError):
    return render_template("error.html", error=exc), exc.status


def page_actor() -> Actor:
    from .auth import actor
    return actor()


def can_build() -> bool:
    a = getattr(g, "actor", None)
    return bool(a and a.can_build)
