"""REST: simulate (filled in by its issue)."""
from __future__ import annotations

from . import bp  # noqa: F401
