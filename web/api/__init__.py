"""The REST API under /api/v1: one blueprint, a module per area (apps, records, people, ...)."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from . import apps, openapi, people, records  # noqa: E402,F401  (routes register on import)
