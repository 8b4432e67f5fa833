"""The UI's two languages: Simplified Chinese and English.

Owns the choice of language (the user's choice kept in the session, else the browser's
``Accept-Language``, else 中文), the ``POST /lang/<code>`` switch, flask-babel's locale selector,
and the ``_()`` used by templates and page views. Messages are keyed by their English text; the
Chinese catalogue is a plain dict in ``web/i18n_zh.py`` (no compile step). A message missing
from the catalogue shows in English (a test keeps the catalogue complete).
"""
from __future__ import annotations

from flask import Blueprint, Flask, g, redirect, request, session, url_for
from flask_babel import Babel

from .i18n_zh import JS_KEYS, ZH

LANGS = {"zh-CN": "中文", "en": "English"}
DEFAULT = "zh-CN"

bp = Blueprint("i18n", __name__)


def current_lang() -> str:
    cached = getattr(g, "_jimu_lang", None)
    if cached:
        return cached
    chosen = session.get("lang")
    if chosen not in LANGS:
        best = request.accept_languages.best_match(["zh-CN", "zh", "en"], default=None)
        chosen = "en" if best == "en" else DEFAULT
    g._jimu_lang = chosen
    return chosen


def gettext(message: str, **params) -> str:
    """The message in the current language; ``%(name)s`` placeholders filled from ``params``."""
    text = ZH.get(message, message) if current_lang() == "zh-CN" else message
    return text % params if params else text


_ = gettext


def js_messages() -> dict[str, str]:
    """The messages the ES modules show, in the current language."""
    return {key: gettext(key) for key in JS_KEYS}


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("pages.home")
    return target


@bp.post("/lang/<code>")
def switch(code: str):
    """Keep the chosen language in the session (CSRF is checked by the auth layer)."""
    if code in LANGS:
        session["lang"] = code
        g._jimu_lang = code
    return redirect(_safe_next(request.form.get("next")))


def init_i18n(app: Flask) -> None:
    Babel(app, locale_selector=lambda: "zh_Hans_CN" if current_lang() == "zh-CN" else "en",
          configure_jinja=False)
    app.jinja_env.globals.update(_=gettext, current_lang=current_lang, js_messages=js_messages, LANGS=LANGS)

    @app.context_processor
    def _lang():
        return {"lang": current_lang()}

    app.register_blueprint(bp)
