"""Reading an uploaded table for import: CSV or XLSX bytes -> column names and numbered rows.

Owns the file-level checks and their clear errors: size (50 MB, 1,000,000 rows, 500 columns),
kind (XLSX by its zip signature, old .xls and other binary files refused), text encoding of a CSV
(UTF-8, UTF-8 with BOM, UTF-16 with BOM, else GBK/GB18030 as Chinese Excel writes it), the
delimiter (comma, tab or semicolon, from the header line), and the line number of every row (the
file's 1-based line, the header being line 1; for XLSX the sheet's row number). The name the file
came with is never used as a path: only its extension is looked at. What the rows mean is
``runtime.importer``'s.
"""
from __future__ import annotations

import csv
import io
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engines.errors import PayloadTooLarge, ValidationFailed

MAX_BYTES = 50 * 1024 * 1024
MAX_ROWS = 1_000_000
MAX_COLUMNS = 500
MAX_XLSX_UNZIPPED = 1024 * 1024 * 1024     # a zip bomb stops here
_JUNK = frozenset(chr(c) for c in range(32) if chr(c) not in "\t\n\r\f\v")


@dataclass
class Sheet:
    columns: list[str]
    rows: Iterator[tuple[int, list[Any]]]      # (line, cells)
    kind: str                                   # csv | xlsx
    encoding: str | None = None


def _bad(message: str) -> ValidationFailed:
    return ValidationFailed(message, {"file": [message]})


def too_large(size: int | None = None) -> PayloadTooLarge:
    return PayloadTooLarge(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB / 文件超过 "
                           f"{MAX_BYTES // (1024 * 1024)} MB", {"file": ["too large"], "limit_bytes": MAX_BYTES})


def too_many_rows() -> PayloadTooLarge:
    return PayloadTooLarge(f"The file has more than {MAX_ROWS:,} rows / 文件超过 {MAX_ROWS:,} 行",
                           {"file": ["too many rows"], "limit_rows": MAX_ROWS})


def open_sheet(data: bytes, filename: str | None = None) -> Sheet:
    """The columns and rows of a CSV or XLSX file given as bytes."""
    if len(data) > MAX_BYTES:
        raise too_large(len(data))
    if not data.strip():
        raise _bad("The file is empty / 文件为空")
    ext = (filename or "").rsplit(".", 1)[-1].lower() if "." in (filename or "") else ""
    if data[:4] == b"PK\x03\x04":
        return _open_xlsx(data)
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise _bad("This is an old Excel (.xls) file: save it as .xlsx or .csv / 旧版 Excel 文件，请另存为 .xlsx 或 .csv")
    if ext == "xlsx":
        raise _bad("The file is not a valid .xlsx workbook / 不是有效的 .xlsx 文件")
    return _open_csv(data)


# ---------------------------------------------------------------- CSV
def decode(data: bytes) -> tuple[str, str]:
    """The text of a CSV file and the encoding it was read with."""
    if data.startswith(b"\xef\xbb\xbf"):
        text, enc = _try(data[3:], "utf-8"), "utf-8-sig"
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text, enc = _try(data, "utf-16"), "utf-16"
    else:
        text, enc = _try(data, "utf-8"), "utf-8"
        if text is None:
            text, enc = _try(data, "gb18030"), "gbk"
    if text is None:
        raise _bad("The file is neither UTF-8 nor GBK text; save it as CSV UTF-8 or .xlsx "
                   "/ 无法识别文件编码，请另存为 UTF-8 CSV 或 .xlsx")
    sample = text[:65536]
    if "\x00" in sample or sum(ch in _JUNK for ch in sample) > max(8, len(sample) // 100):
        raise _bad("The file is not a CSV or XLSX table / 文件不是 CSV 或 XLSX 表格")
    return text, enc


def _try(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", "\t", ";")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _open_csv(data: bytes) -> Sheet:
    text, enc = decode(data)
    first = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first), strict=False)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise _bad(f"line 1: {exc} / 第 1 行无法解析") from exc
    if not header or not any(h.strip() for h in header):
        raise _bad("The first line must name the columns / 第一行必须是列名")
    columns = _columns(header)
    physical_lines = text.count("\n")

    def rows() -> Iterator[tuple[int, list[Any]]]:
        count = 0
        line = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise _bad(f"line {line}: {exc} / 第 {line} 行无法解析") from exc
            if any(c.strip() for c in cells):
                count += 1
                if count > MAX_ROWS:
                    raise too_many_rows()
                yield line, cells
            line = reader.line_num + 1

    if physical_lines > MAX_ROWS + 1:
        _count_csv_rows(text, _delimiter(first))
    return Sheet(columns, rows(), "csv", enc)


def _count_csv_rows(text: str, delimiter: str) -> None:
    """Refuse a file of more than MAX_ROWS records before importing any of it."""
    count = -1
    try:
        for cells in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False):
            if any(c.strip() for c in cells):
                count += 1
                if count > MAX_ROWS:
                    raise too_many_rows()
    except csv.Error:
        return   # reported with its line while importing


def _columns(header: list[Any]) -> list[str]:
    names = ["" if h is None else str(h).replace("\ufeff", "").strip() for h in header]
    while names and not names[-1]:
        names.pop()
    if len(names) > MAX_COLUMNS:
        raise _bad(f"At most {MAX_COLUMNS} columns / 最多 {MAX_COLUMNS} 列")
    seen: set[str] = set()
    dupes = sorted({n for n in names if n and (n in seen or seen.add(n))})
    if dupes:
        raise ValidationFailed(f"Duplicate column names: {', '.join(dupes)} / 列名重复",
                               {"file": [f"duplicate column {d!r}" for d in dupes]})
    return names


# ---------------------------------------------------------------- XLSX
def _open_xlsx(data: bytes) -> Sheet:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > 10_000 or sum(i.file_size for i in infos) > MAX_XLSX_UNZIPPED:
                raise _bad("The workbook unpacks to too much data / 工作簿解压后过大")
            if "xl/workbook.xml" not in {i.filename for i in infos}:
                raise _bad("The file is a zip archive, not an .xlsx workbook / 文件是压缩包而不是 .xlsx 工作簿")
    except zipfile.BadZipFile as exc:
        raise _bad("The file is not a valid .xlsx workbook / 不是有效的 .xlsx 文件") from exc
    from openpyxl import load_workbook

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # openpyxl warns about styles it does not know
            wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        ws = wb.worksheets[0]
        rows_iter = ws.iter_rows(min_row=1, values_only=True)
        header = next(rows_iter, None)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds on a broken file
        raise _bad("The file is not a valid .xlsx workbook / 不是有效的 .xlsx 文件") from exc
    if not header or not any(h not in (None, "") for h in header):
        wb.close()
        raise _bad("The first row must name the columns / 第一行必须是列名")
    columns = _columns(list(header))
    if ws.max_row is not None and ws.max_row > MAX_ROWS + 1:
        wb.close()
        raise too_many_rows()

    def rows() -> Iterator[tuple[int, list[Any]]]:
        count = 0
        try:
            for line, cells in enumerate(rows_iter, start=2):
                if not any(c not in (None, "") for c in cells):
                    continue
                count += 1
                if count > MAX_ROWS:
                    raise too_many_rows()
                yield line, list(cells)
        except (PayloadTooLarge, ValidationFailed):
            raise
        except Exception as exc:  # noqa: BLE001 - a broken sheet part
            raise _bad(f"The workbook cannot be read: {type(exc).__name__} / 工作簿无法读取") from exc
        finally:
            wb.close()

    return Sheet(columns, rows(), "xlsx", None)
