"""Small SVG building blocks for the report charts: escaping, text measuring, numbers, series.

Owns making any user string safe inside SVG/XML (escaped, with characters XML 1.0 forbids
removed), approximate text widths (CJK characters count double) for clipping labels, number
formatting, the palette, the document frame (``role="img"``, ``<title>``, ``<desc>``) and reading
a report result as categories × series. The chart kinds live in ``charts.py``.
"""
from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from typing import Any

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")
FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', 'PingFang SC', 'Microsoft YaHei', sans-serif\""
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
BLANK = "(blank / 空)"


def esc(value: Any) -> str:
    """Text safe as XML character data and as a quoted attribute value."""
    text = _XML_ILLEGAL.sub("", "" if value is None else str(value))
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


def text_width(text: str, size: float) -> float:
    return sum(size if unicodedata.east_asian_width(ch) in "WF" else size * 0.6 for ch in text)


def clip(text: str, max_px: float, size: float) -> str:
    if text_width(text, size) <= max_px:
        return text
    out = ""
    for ch in text:
        if text_width(out + ch + "…", size) > max_px:
            break
        out += ch
    return out + "…"


def fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.2f}"
    return str(value)


def axis(low: float, high: float, intervals: int = 5) -> tuple[float, float, float]:
    """(min, max, step) of a value axis covering [low, high] with round steps (1, 2, 5 × 10^k)."""
    low, high = min(low, 0.0), max(high, 0.0)
    span = high - low
    if span <= 0:
        return 0.0, 1.0, 0.25
    raw = span / intervals
    exp = 10 ** math.floor(math.log10(raw))
    step = next(m * exp for m in (1, 2, 5, 10) if m * exp >= raw)
    return math.floor(low / step) * step, math.ceil(high / step) * step, step


def uid(kind: str, title: str, result: dict) -> str:
    digest = hashlib.sha1(f"{kind}\x00{title}\x00{result.get('rows')!r}".encode()).hexdigest()
    return f"chart-{digest[:10]}"


def document(kind: str, title: str, desc: str, body: list[str], width: int, height: int, result: dict) -> str:
    ident = uid(kind, title, result)
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="{ident}-t {ident}-d" {FONT} '
            f'font-size="12" data-chart="{esc(kind)}">'
            f'<title id="{ident}-t">{esc(title)}</title><desc id="{ident}-d">{esc(desc)}</desc>'
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>'
            f'<text x="12" y="22" font-size="15" font-weight="600" fill="#222">{esc(clip(title, width - 24, 15))}</text>')
    return head + "".join(body) + "</svg>"


def text(x: float, y: float, value: str, *, size: int = 12, anchor: str = "start", fill: str = "#333",
         weight: str | None = None, rotate: float | None = None) -> str:
    extra = f' font-weight="{weight}"' if weight else ""
    if rotate is not None:
        extra += f' transform="rotate({rotate:g} {x:.1f} {y:.1f})"'
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{extra}>'
            f'{esc(value)}</text>')


def display(column: dict, value: Any) -> str:
    """A cell as people read it: option labels for select values, a marker for blanks."""
    if value is None:
        return BLANK
    options = column.get("options") or {}
    return str(options.get(value, fmt(value)) if isinstance(value, str) else fmt(value))


def dimensions(result: dict) -> list[dict]:
    return [c for c in result.get("columns", []) if c.get("role") == "dimension"]


def measures(result: dict) -> list[dict]:
    return [c for c in result.get("columns", [])
            if c.get("role", "measure") == "measure" and c.get("type") not in ("date", "datetime")]


def series_model(result: dict, *, first_only: bool = False) -> tuple[list[str], list[tuple[str, list[float]]]]:
    """(category labels, [(series name, values)]) of a result: rows by dimensions × measure columns.

    With two dimensions and one measure the second dimension becomes the series (for stacked bars
    and multi-line charts); pivot columns are series already.
    """
    rows = result.get("rows") or []
    dims, meas = dimensions(result), measures(result)
    if any(c.get("pivot") for c in meas):
        meas = [c for c in meas if c.get("pivot")]
    if first_only:
        meas = meas[:1]
    if len(dims) >= 2 and len(meas) == 1:
        cats: list[str] = []
        names: list[str] = []
        cells: dict[tuple[str, str], float] = {}
        for r in rows:
            cat = " · ".join(display(d, r.get(d["key"])) for d in dims[:-1])
            name = display(dims[-1], r.get(dims[-1]["key"]))
            if cat not in cats:
                cats.append(cat)
            if name not in names:
                names.append(name)
            cells[(cat, name)] = _num(r.get(meas[0]["key"]))
        return cats, [(n, [cells.get((c, n), 0.0) for c in cats]) for n in names]
    cats = [" · ".join(display(d, r.get(d["key"])) for d in dims) or str(i + 1) for i, r in enumerate(rows)]
    return cats, [(m["label"], [_num(r.get(m["key"])) for r in rows]) for m in meas]


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def summary(cats: list[str], series: list[tuple[str, list[float]]], limit: int = 20) -> str:
    """A sentence a screen reader can read: every category with its values (first ``limit``)."""
    parts = []
    for i, cat in enumerate(cats[:limit]):
        values = ", ".join(f"{name} {fmt(vals[i])}" if len(series) > 1 else fmt(vals[i]) for name, vals in series)
        parts.append(f"{cat}: {values}")
    more = f"; … {len(cats) - limit} more / 另有 {len(cats) - limit} 项" if len(cats) > limit else ""
    return "; ".join(parts) + more
