"""CSV and XLSX exports: BOM, 中文 round trip, streaming, and spreadsheet formulas made inert."""
from __future__ import annotations

import csv
import io
import types
import zipfile
from datetime import date
from decimal import Decimal

import openpyxl
import pytest

from engines.reports import rows_to_csv, rows_to_xlsx, run_report

from .test_reports_fixtures import NOW, SHANGHAI, make_app, seed

COLUMNS = [{"key": "name", "label": "名称"}, {"key": "n", "label": "数量"}, {"key": "when", "label": "日期"}]
HYPERLINK = '=HYPERLINK("http://x")'
DANGEROUS = [HYPERLINK, "+1+2", "-3+4", "@SUM(A1)", "\t=1", "\r=1", "  =1+1"]


def rows():
    return ([{"name": text, "n": i, "when": date(2026, 1, 31)} for i, text in enumerate(DANGEROUS)]
            + [{"name": "中文 客户", "n": -5, "when": None}, {"name": None, "n": 1.25, "when": None},
               {"name": "plain-text", "n": Decimal("1250000.50"), "when": None}])


def read_csv(chunks) -> list[list[str]]:
    data = b"".join(chunks)
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_csv_has_a_bom_and_round_trips_chinese():
    table = read_csv(rows_to_csv(COLUMNS, rows()))
    assert table[0] == ["名称", "数量", "日期"]
    assert ["中文 客户", "-5", ""] in table
    assert ["", "1.25", ""] in table and ["plain-text", "1250000.50", ""] in table


def test_csv_neutralises_formulas_but_not_numbers():
    table = read_csv(rows_to_csv(COLUMNS, rows()))
    names = [r[0] for r in table[1:len(DANGEROUS) + 1]]
    assert names == ["'" + t for t in DANGEROUS]
    assert "'" + HYPERLINK in names
    assert [r[1] for r in table[1:len(DANGEROUS) + 1]] == [str(i) for i in range(len(DANGEROUS))]
    assert table[len(DANGEROUS) + 1][1] == "-5"           # a negative number stays a number


def test_csv_headers_are_neutralised_too():
    table = read_csv(rows_to_csv([{"key": "a", "label": "=cmd|' /C calc'!A0"}], [{"a": 1}]))
    assert table[0] == ["'=cmd|' /C calc'!A0"]


def test_csv_is_streamed_in_chunks():
    many = ({"name": f"客户 {i}", "n": i, "when": None} for i in range(20_000))
    chunks = rows_to_csv(COLUMNS, many)
    assert isinstance(chunks, types.GeneratorType)
    first = next(chunks)
    assert first.startswith(b"\xef\xbb\xbf") and first.count(b"\r\n") == 1      # header alone, sent at once
    rest = list(chunks)
    assert len(rest) > 3 and all(len(c) <= 33 * 1024 * 4 for c in rest)
    assert len(read_csv([first, *rest])) == 20_001


def test_csv_accepts_sequences():
    assert read_csv(rows_to_csv(COLUMNS, [["a", 1, None]]))[1] == ["a", "1", ""]


def load(data: bytes):
    wb = openpyxl.load_workbook(io.BytesIO(data))
    return wb.active


def test_xlsx_formulas_are_plain_strings_and_numbers_stay_numbers():
    data = rows_to_xlsx(COLUMNS, rows())
    ws = load(data)
    cells = list(ws.iter_rows(values_only=False))
    assert [c.value for c in cells[0]] == ["名称", "数量", "日期"]
    for i, text in enumerate(DANGEROUS, start=1):
        name, n = cells[i][0], cells[i][1]
        assert name.value == text.replace("\r", "\n") or name.value == text
        assert name.data_type == "s"
        assert n.value == i - 1 and n.data_type == "n"
    assert cells[1][0].value == HYPERLINK
    sheet = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet and "<f " not in sheet
    by_name = {c[0].value: c for c in cells[len(DANGEROUS) + 1:]}
    assert by_name["中文 客户"][1].value == -5
    assert by_name["plain-text"][1].value == pytest.approx(1250000.5)
    assert cells[1][2].value.date() == date(2026, 1, 31)


def test_xlsx_drops_characters_excel_refuses_and_names_the_sheet():
    data = rows_to_xlsx(COLUMNS, [{"name": "a\x00b\x1fc", "n": 1}], sheet_title="报表: 1/2")
    wb = openpyxl.load_workbook(io.BytesIO(data))
    assert wb.active.title == "报表  1 2" and wb.active["A2"].value == "abc"


def test_exporting_a_real_report(engine):
    tables = seed(engine)
    app = make_app()
    with engine.connect() as conn:
        result = run_report(conn, app, {"entity": "order", "group_by": ["note"],
                                        "measures": [{"agg": "count"}, {"agg": "sum", "field": "amount"}]},
                            tables, tz=SHANGHAI, now=NOW)
    table = read_csv(rows_to_csv(result["columns"], result["rows"]))
    assert table[0] == ["备注", "count", "sum(金额)"]
    assert ["'" + HYPERLINK, "1", "1200.5"] in table and ["中文备注", "1", "800.0"] in table
    ws = load(rows_to_xlsx(result["columns"], result["rows"]))
    values = [[c.value for c in r] for r in ws.iter_rows()]
    assert [HYPERLINK, 1, 1200.5] in values and ["中文备注", 1, 800.0] in values
