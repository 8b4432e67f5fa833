"""Who is calling: session sign-in (flask-login), bearer API tokens, CSRF, and the per-request
transaction with its ``Context``.

Login is required everywhere except ``/login``, ``/static`` and the public form routes.
"""
from __future__ import annotations

import hmac
import secrets
from contextlib import contextmanager

from flask import Flask, g, request, session
from flask_login import LoginManager, UserMixin, current_user

from engines.errors import PermissionDenied, Unauthorized
from runtime import users
from runtime.context import Actor, Context

from .app import services

PUBLIC_PREFIXES = ("/login", "/static/", "/public/", "/f/", "/s/", "/healthz", "/lang/")
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


class SessionUser(UserMixin):
    def __init__(self, uid: int, version: int):
        self.uid = uid
        self.version = version

    def get_id(self) -> str:
        return f"{self.uid}:{self.version}"


def csrf_token() -> str:
    token = session.get("_csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["_csrf"] = token
    return token


def csrf_ok() -> bool:
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
    token = session.get("_csrf") or ""
    # compared as bytes: compare_digest refuses text with non-ASCII characters (any header may hold them)
    return bool(token) and hmac.compare_digest(sent.encode("utf-8", "replace"), token.encode())


def init_app(app: Flask) -> None:
    lm = LoginManager()
    lm.init_app(app)
    lm.session_protection = "strong"

    @lm.user_loader
    def _load(user_id: str):
        try:
            uid, version = (int(x) for x in user_id.split(":"))
        except ValueError:
            return None
        with services().engine.connect() as conn:
            current = users.session_version(conn, uid)
        if current is None or current != version:
            return None   # signed out everywhere, deactivated, or password changed
        return SessionUser(uid, version)

    @lm.unauthorized_handler
    def _unauthorized():
        from flask import redirect, url_for
        if request.path.startswith("/api/"):
            raise Unauthorized("Sign in or send an API token / 请登录或提供 API 令牌")
        return redirect(url_for("pages.login", next=request.full_path if request.query_string else request.path))

    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.before_request
    def _who():
        g.actor = None
        path = request.path
        auth = request.headers.get("Authorization", "")
        if path.startswith("/api/"):
            if auth:
                scheme, _, token = auth.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise Unauthorized("Use Authorization: Bearer <token> / 请使用 Bearer 令牌")
                with services().engine.begin() as conn:
                    g.actor = users.actor_for_token(conn, token.strip())
                g.via_token = True
                return None
            if not current_user.is_authenticated:
                raise Unauthorized("Sign in or send an API token / 请登录或提供 API 令牌")
            if request.method in UNSAFE and not csrf_ok():
                raise PermissionDenied("Missing or wrong CSRF token / CSRF 令牌缺失或无效", {"csrf": ["required"]})
            g.actor = _session_actor()
            return None
        if path.startswith(PUBLIC_PREFIXES) or path == "/favicon.ico":
            if request.method in UNSAFE and path.startswith(("/login", "/lang/", "/f/", "/s/")) and not csrf_ok():
                raise PermissionDenied("Missing or wrong CSRF token / CSRF 令牌缺失或无效", {"csrf": ["required"]})
            if current_user.is_authenticated:
                g.actor = _session_actor()
            return None
        if not current_user.is_authenticated:
            return app.login_manager.unauthorized()
        if request.method in UNSAFE and not csrf_ok():
            raise PermissionDenied("Missing or wrong CSRF token / CSRF 令牌缺失或无效", {"csrf": ["required"]})
        g.actor = _session_actor()
        if g.actor is None:
            return app.login_manager.unauthorized()
        return None


def _session_actor() -> Actor | None:
    with services().engine.connect() as conn:
        return users.load_actor(conn, current_user.uid)


def actor() -> Actor:
    a = getattr(g, "actor", None)
    if a is None:
        raise Unauthorized("Sign in first / 请先登录")
    return a


@contextmanager
def tx(actor_override: Actor | None = None):
    """One transaction for the request; commits when the block ends without an error."""
    with services().engine.begin() as conn:
        yield Context(conn, actor_override or actor())


def client_address() -> str:
    return request.remote_addr or "unknown"
