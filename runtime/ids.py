"""Ids that arrive as text (URL segments, query strings, form fields) turned into database ids.

Owns one rule: an id is a whole number from 1 to 2**62 written in ASCII digits; anything else
names no row. Without it, ``99999999999999999999`` reaches the driver, which cannot bind it.
What a caller answers for a bad id (usually 404) is the caller's.
"""
from __future__ import annotations

import re
from typing import Any

MAX_ID = 2**62
_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_id(raw: Any) -> int | None:
    """The id ``raw`` names, or None when it can name no row (not a whole number, out of range)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and _DIGITS.fullmatch(raw.strip()):
        value = int(raw.strip())
    else:
        return None
    return value if 0 < value <= MAX_ID else None
