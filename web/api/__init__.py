"""The REST API under /api/v1: one blueprint, a module per area (apps, records, people, ...)."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# routes register on import; one module per area
from . import apps, data, expressions, flows, openapi, packs, people, records, reports, simulate  # noqa: E402,F401
