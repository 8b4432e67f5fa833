"""The Flask app factory: configuration, services in ``app.extensions["jimu"]``, blueprints,
sign-in (sessions and bearer tokens), CSRF and the one JSON error shape for ``/api``.

Views parse input, call a service and render; the services live in runtime/builder/engines.
"""
from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from engines.errors import BadRequest, JimuError
from runtime.catalog import Catalog
from runtime.db import create_db_engine
from runtime.records import RecordsService
from runtime.system_tables import create_all

log = logging.getLogger("jimu")


@dataclass
class Services:
    engine: object
    catalog: Catalog
    records: RecordsService
    timezone: str
    extra: dict = field(default_factory=dict)


def default_database_url() -> str:
    return os.environ.get("JIMU_DATABASE_URL") or f"sqlite:///{Path.cwd() / 'jimu.db'}"


def build_services(database_url: str, timezone: str) -> Services:
    from runtime.hooks import default_hooks

    engine = create_db_engine(database_url)
    create_all(engine)
    catalog = Catalog(timezone)
    records = RecordsService(catalog, default_hooks(catalog))
    return Services(engine=engine, catalog=catalog, records=records, timezone=timezone)


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__, template_folder="templates", static_folder="static")
    cfg = {
        "JIMU_DATABASE_URL": default_database_url(),
        "JIMU_TIMEZONE": os.environ.get("JIMU_TIMEZONE", "Asia/Shanghai"),
        "SECRET_KEY": os.environ.get("JIMU_SECRET_KEY") or secrets.token_hex(32),
        "JIMU_SMTP_URL": os.environ.get("JIMU_SMTP_URL"),
        # the instance's own files (e.g. the exports uninstalls keep), beside the default jimu.db
        "JIMU_DATA_DIR": os.environ.get("JIMU_DATA_DIR") or str(Path.cwd() / "jimu-data"),
        "MAX_CONTENT_LENGTH": 20 * 1024 * 1024,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "JSON_AS_ASCII": False,
    }
    cfg.update(config or {})
    app.config.update(cfg)
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    services = build_services(app.config["JIMU_DATABASE_URL"], app.config["JIMU_TIMEZONE"])
    app.extensions["jimu"] = services

    app.before_request(_refuse_nul)
    from . import auth
    auth.init_app(app)

    from .api import bp as api_bp
    app.register_blueprint(api_bp)
    from .pages import register_pages
    register_pages(app)
    from .pages_import import bp as import_page_bp
    app.register_blueprint(import_page_bp)
    from .public import bp as public_bp
    app.register_blueprint(public_bp)
    from .public_surveys import bp as surveys_bp
    app.register_blueprint(surveys_bp)
    from .pages_admin import bp as admin_bp
    app.register_blueprint(admin_bp)

    @app.errorhandler(JimuError)
    def _jimu_error(exc: JimuError):
        if _wants_json():
            return jsonify(exc.to_payload()), exc.status
        from .pages import error_page
        return error_page(exc)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if _wants_json():
            code = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 415: "bad_request",
                    429: "rate_limited"}.get(exc.code or 500, "error")
            return jsonify({"error": {"code": code, "message": exc.description or exc.name}}), exc.code
        return exc

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        if _wants_json():
            return jsonify({"error": {"code": "internal_error",
                                      "message": "Something went wrong on our side / 服务器内部错误"}}), 500
        return "Internal error / 服务器内部错误", 500

    @app.teardown_appcontext
    def _close(_exc):
        conn = g.pop("jimu_conn", None)
        if conn is not None:
            conn.close()

    return app


def _refuse_nul() -> None:
    """NUL is never text (no PostgreSQL column or search takes it): a path, query string or
    urlencoded form holding one is refused before anything reads it (JSON bodies: api.util)."""
    form = request.form if request.mimetype == "application/x-www-form-urlencoded" else None
    if "\x00" in request.path or _holds_nul(request.args) or (form is not None and _holds_nul(form)):
        raise BadRequest("The request holds a NUL character (%00), which is not text / 请求中含有 NUL 字符",
                         {"_request": ["NUL"]})


def _holds_nul(values) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values.getlist(key)) for key in values)


def _wants_json() -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/public/")


def services() -> Services:
    from flask import current_app
    return current_app.extensions["jimu"]
