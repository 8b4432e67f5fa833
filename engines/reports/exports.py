"""Exports of report rows (and any list of records) to CSV and XLSX, safe to open in a spreadsheet.

Owns the cell conversion and spreadsheet-formula injection rule: a text cell that starts with
``= + - @``, a tab or a carriage return (also after leading spaces) is made inert — in CSV it gets
a leading apostrophe, in XLSX it is written as a plain string cell (never a formula). Numbers stay
numbers. CSV is UTF-8 with a BOM (so Excel reads 中文) and streamed in chunks; XLSX is written by
openpyxl in write-only mode. Rows are dicts keyed by column key (or sequences in column order).
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

FORMULA_START = frozenset("=+-@\t\r")
CHUNK_CHARS = 32 * 1024          # ≤ 128 KB of UTF-8 per chunk
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_SHEET_ILLEGAL = re.compile(r"[\[\]:*?/\\]")


def is_formula_like(text: str) -> bool:
    if not text:
        return False
    stripped = text.lstrip(" ")
    return text[0] in FORMULA_START or (stripped[:1] in FORMULA_START)


def _cell_text(value: Any) -> str | int | float:
    """A value as CSV text (numbers pass through to be written as numbers)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        value = ", ".join("" if v is None else str(v) for v in value)
    text = str(value).replace("\x00", "")
    return "'" + text if is_formula_like(text) else text


def _values(columns: Sequence[Mapping], row: Any) -> list[Any]:
    if isinstance(row, Mapping):
        return [row.get(c["key"]) for c in columns]
    return list(row)


def _header(c: Mapping) -> str:
    return str(c.get("label") or c.get("key") or "")


def rows_to_csv(columns: Sequence[Mapping], rows_iter: Iterable[Any]) -> Iterator[bytes]:
    """Stream a CSV file: BOM + header first, then chunks of about 32K characters of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([_cell_text(_header(c)) for c in columns])
    yield b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    for row in rows_iter:
        writer.writerow([_cell_text(v) for v in _values(columns, row)])
        if buffer.tell() >= CHUNK_CHARS:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")


def _xlsx_cell(ws, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool | int | float | Decimal):
        return value
    if isinstance(value, datetime):
        # Excel has no time zones: write the wall-clock time the value carries.
        return value.replace(tzinfo=None)
    if isinstance(value, date | time):
        return value
    if isinstance(value, list | tuple):
        value = ", ".join("" if v is None else str(v) for v in value)
    text = _XLSX_ILLEGAL.sub("", str(value))
    cell = WriteOnlyCell(ws, value=text)
    cell.data_type = "s"   # never "f": a text that looks like a formula stays text
    return cell


def rows_to_xlsx(columns: Sequence[Mapping], rows_iter: Iterable[Any], *, sheet_title: str = "Report") -> bytes:
    """An .xlsx workbook of one sheet: a header row of labels, then the rows."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=(_SHEET_ILLEGAL.sub(" ", sheet_title).strip() or "Report")[:31])
    ws.append([_xlsx_cell(ws, _header(c)) for c in columns])
    for row in rows_iter:
        ws.append([_xlsx_cell(ws, v) for v in _values(columns, row)])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
