"""Public satisfaction-survey pages: ``GET /s/<token>`` shows the survey, ``POST /s/<token>``
takes the answer (once). No sign-in; the token is the only key. A client that asks for JSON gets
the JSON error shape (404 unknown or malformed token, 409 already answered, 410 expired).

The view parses the form and calls ``runtime.surveys``; nothing else happens here.
"""
from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, jsonify, render_template, request

from engines.errors import JimuError, ValidationFailed
from runtime import surveys
from runtime.context import Context

from .api.util import refuse_non_text
from .app import services

bp = Blueprint("public_surveys", __name__)


def _wants_json() -> bool:
    return request.is_json or request.accept_mimetypes.best == "application/json"


def _error(exc: JimuError):
    if _wants_json():
        return jsonify(exc.to_payload()), exc.status
    return render_template("survey.html", error=exc, survey=None, done=False), exc.status


def _body(fields) -> dict:
    if request.is_json:
        try:
            body = request.get_json(silent=True)
        except RecursionError:    # nested deeper than the parser goes: not a body anyone sends
            body = None
        refuse_non_text(body)
        if not isinstance(body, dict):
            raise ValidationFailed("The body must be a JSON object / 请求体必须是对象", {"_body": ["must be an object"]})
        return body
    out = {}
    for f in fields:
        raw = request.form.get(f.key)
        if raw is None or raw.strip() == "":
            continue
        out[f.key] = raw.strip()
    return out


@bp.get("/s/<token>")
def show(token: str):
    svc = services()
    try:
        with svc.engine.begin() as conn:
            survey = surveys.open_survey(Context(conn, surveys.SURVEY_ACTOR, datetime.now(UTC)), svc.catalog, token)
    except JimuError as exc:
        return _error(exc)
    if _wants_json():
        return jsonify({"form": survey["form"]["key"], "about": survey["about"],
                        "fields": [{"key": f.key, "type": f.type, "label": f.label, "required": f.required}
                                   for f in survey["fields"]]})
    return render_template("survey.html", survey=survey, error=None, done=False, values={}, errors={})


@bp.post("/s/<token>")
def submit(token: str):
    svc = services()
    now = datetime.now(UTC)
    survey = None
    try:
        with svc.engine.begin() as conn:
            survey = surveys.open_survey(Context(conn, surveys.SURVEY_ACTOR, now), svc.catalog, token)
            body = _body(survey["fields"])
            result = surveys.answer(Context(conn, surveys.SURVEY_ACTOR, now), svc.records, token, body)
    except ValidationFailed as exc:
        if _wants_json() or survey is None:
            return _error(exc)
        errors = exc.details if isinstance(exc.details, dict) else {}
        return render_template("survey.html", survey=survey, error=exc, done=False, values=request.form,
                               errors=errors), exc.status
    except JimuError as exc:
        return _error(exc)
    if _wants_json():
        return jsonify({"ok": True, "id": result["record"]["id"]}), 201
    return render_template("survey.html", survey=survey, error=None, done=True)
