"""Server-rendered pages: sign-in, the app launcher, and error pages.

Each view parses input, calls a service and renders a Jinja2 template (autoescaped).
"""
from __future__ import annotations

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask_login import login_user, logout_user

from builder import store
from engines.errors import JimuError, RateLimited, Unauthorized
from runtime import users
from runtime.context import Actor

from .app import services
from .auth import SessionUser, client_address, tx

bp = Blueprint("pages", __name__)


def register_pages(app: Flask) -> None:
    app.register_blueprint(bp)


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
            with services().engine.begin() as conn:
                actor = users.authenticate(conn, name, request.form.get("password", ""), client_address())
                version = users.session_version(conn, actor.id)
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


@bp.get("/")
def home():
    with tx() as ctx:
        apps = [a for a in store.list_apps(ctx.conn) if a["published_revision"] > 0]
    return render_template("home.html", apps=apps)


@bp.get("/healthz")
def healthz():
    return {"ok": True}


def error_page(exc: JimuError):
    return render_template("error.html", error=exc), exc.status


def page_actor() -> Actor:
    from .auth import actor
    return actor()
