"""The one JSON error shape of /api, pinned: {"error": {"code", "message", "details"?}}."""
from __future__ import annotations

from engines import errors


def assert_shape(body, code):
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert set(body["error"]) <= {"code", "message", "details"}


def test_every_error_class_has_a_code_and_status():
    for cls, status in ((errors.BadRequest, 400), (errors.Unauthorized, 401), (errors.PermissionDenied, 403),
                        (errors.NotFound, 404), (errors.Conflict, 409), (errors.TransitionNotAllowed, 409),
                        (errors.PayloadTooLarge, 413), (errors.ValidationFailed, 422),
                        (errors.DefinitionError, 422), (errors.RateLimited, 429)):
        exc = cls("m", {"f": ["x"]})
        assert exc.status == status
        assert exc.to_payload() == {"error": {"code": exc.code, "message": "m", "details": {"f": ["x"]}}}


def test_http_errors_have_the_shape(api, flask_app):
    st, body = api.get("/no/such/route")
    assert st == 404
    assert_shape(body, "not_found")
    resp = flask_app.test_client().delete("/api/v1/openapi.json", headers={"Authorization": f"Bearer {api.token}"})
    assert resp.status_code == 405
    assert_shape(resp.get_json(), "method_not_allowed")
    st, body = api.call("POST", "/apps", raw=b"[")
    assert st == 400
    assert_shape(body, "bad_request")
    st, body = api.post("/apps", {"app": "X"})
    assert st == 422
    assert_shape(body, "validation_failed")
    assert isinstance(body["error"]["details"], list)
