"""The one error tree of Jimu.

Every error a user can see is a ``JimuError`` with a stable string ``code``, a message, optional
``details`` (field -> list of messages, or a list of located errors) and an HTTP ``status``.
Definition-time problems (bad metadata, bad formula) are ``DefinitionError``; run-time problems
have their own classes. ``web`` turns any of them into the JSON error shape with ``to_payload``.

This module owns the classes and their payload; it does not know about HTTP frameworks.
"""
from __future__ import annotations

from typing import Any


class JimuError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, details: Any = None, *, code: str | None = None,
                 status: int | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_payload(self) -> dict:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class BadRequest(JimuError):
    """A body or parameter that cannot be parsed at all."""
    code = "bad_request"
    status = 400


class DefinitionError(JimuError):
    """Bad metadata: details is a list of ``{"location", "message"[, "position"]}``."""
    code = "validation_failed"
    status = 422


class ValidationFailed(JimuError):
    """A record (or a request body) that breaks its rules: details maps field -> [messages]."""
    code = "validation_failed"
    status = 422


class Unauthorized(JimuError):
    code = "unauthorized"
    status = 401


class PermissionDenied(JimuError):
    code = "forbidden"
    status = 403


class NotFound(JimuError):
    code = "not_found"
    status = 404


class Conflict(JimuError):
    code = "conflict"
    status = 409


class TransitionNotAllowed(JimuError):
    code = "transition_not_allowed"
    status = 409


class PayloadTooLarge(JimuError):
    code = "payload_too_large"
    status = 413


class RateLimited(JimuError):
    code = "rate_limited"
    status = 429


def field_errors(errors: dict[str, list[str]], message: str = "Validation failed / 校验失败") -> ValidationFailed:
    """A ValidationFailed naming every failing field."""
    return ValidationFailed(message, {k: list(v) for k, v in errors.items()})
