"""Public forms over HTTP: the page ``/f/<token>`` (server-rendered, CSRF-protected post) and
``POST /public/forms/<token>`` (JSON or form-encoded, for websites: no login, no CSRF, CORS open).

Views parse input, call ``runtime.public_forms`` and render; the rules live there.
"""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template, request

from engines.errors import BadRequest, PayloadTooLarge, RateLimited, ValidationFailed
from runtime import public_forms as pfm

from .api.util import refuse_non_text
from .app import services
from .auth import client_address, tx

bp = Blueprint("public", __name__)


def _limit_body() -> None:
    request.max_content_length = pfm.MAX_BODY_BYTES
    if request.content_length is not None and request.content_length > pfm.MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The submission is larger than {pfm.MAX_BODY_BYTES // 1024} KB / 提交内容过大",
                              {"_body": ["too large"]})


def _form_values(pf: pfm.PublicForm, form, *, skip=("csrf_token",)) -> dict:
    multi = {f.key for f in pf.fields if f.type == "multiselect"}
    out = {}
    for key in form.keys():
        if key in skip:
            continue
        out[key] = [v for v in form.getlist(key) if v != ""] if key in multi else form.get(key)
    return out


@bp.route("/public/forms/<token>", methods=["POST", "OPTIONS"])
def submit_api(token):
    if request.method == "OPTIONS":
        return Response(status=204)
    _limit_body()
    with tx(pfm.ANONYMOUS) as ctx:
        pf = pfm.load(ctx.conn, services().catalog, token)
        if request.mimetype in ("application/json", "text/plain"):   # text/plain: JSON sent without a preflight
            try:
                values = request.get_json(force=True)
            except Exception as exc:  # werkzeug raises its own BadRequest subclasses
                raise BadRequest("The body is not valid JSON / 请求体不是有效的 JSON", {"_body": ["invalid JSON"]}) from exc
            refuse_non_text(values)
        else:
            values = _form_values(pf, request.form, skip=())
        out = pfm.submit(services().records, services().catalog, ctx, token, values, client_address())
    return jsonify(out), 201


@bp.after_app_request
def _cors(resp: Response) -> Response:
    # websites post to /public/ from their own origin; nothing there reads cookies or sessions
    if request.path.startswith("/public/"):
        resp.headers["Access-Control-Allow-Origin"] = "*"
        resp.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        resp.headers["Access-Control-Allow-Headers"] = "Content-Type"
        resp.headers["Access-Control-Max-Age"] = "3600"
        if resp.status_code == 429:
            resp.headers.setdefault("Retry-After", "600")
    return resp


def _page(pf: pfm.PublicForm, *, values=None, errors=None, general=None, done=False, status=200):
    return render_template("public_form.html", form=pf, token=pf.token, fields=pfm.page_fields(pf, values, errors),
                           honeypot=pf.honeypot, general=general or [], done=done,
                           thanks=pfm.THANKS), status


@bp.get("/f/<token>")
def page(token):
    with tx(pfm.ANONYMOUS) as ctx:
        pf = pfm.load(ctx.conn, services().catalog, token)
        return _page(pf)


@bp.post("/f/<token>")
def page_submit(token):
    """The page's own post (the auth layer has checked its CSRF token)."""
    _limit_body()
    try:
        with tx(pfm.ANONYMOUS) as ctx:
            pf = pfm.load(ctx.conn, services().catalog, token)
            values = _form_values(pf, request.form)
            pfm.submit(services().records, services().catalog, ctx, token, values, client_address())
    except ValidationFailed as exc:
        details = exc.details if isinstance(exc.details, dict) else {}
        listed = {f.key for f in pf.fields}
        general = [f"{k}: {'; '.join(map(str, v))}" for k, v in details.items() if k not in listed] or \
            ([exc.message] if not details else [])
        return _page(pf, values=values, errors={k: v for k, v in details.items() if k in listed},
                     general=[exc.message, *general], status=422)
    except RateLimited as exc:
        return _page(pf, values=values, general=[exc.message], status=429)
    return _page(pf, done=True)
