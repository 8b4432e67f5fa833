"""SVG charts: well-formed XML, accessible (role, title, desc, text labels), hostile text inert."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from engines.errors import ValidationFailed
from engines.reports import CHART_KINDS, render_chart

NS = "{http://www.w3.org/2000/svg}"
HOSTILE = "<img src=x onerror=alert(1)>"
TITLE = f'销售 "报表" & {HOSTILE}'


def table_result(n=4):
    return {
        "columns": [{"key": "status", "label": "状态 <b>", "type": "select", "role": "dimension",
                     "options": {"won": "赢单", HOSTILE: HOSTILE}},
                    {"key": "count", "label": "count", "type": "integer", "role": "measure"},
                    {"key": "sum_amount", "label": f"金额 {HOSTILE}", "type": "number", "role": "measure"}],
        "rows": [{"status": s, "count": i + 1, "sum_amount": 10.5 * (i + 1)} for i, s in
                 enumerate(["won", HOSTILE, None, "客户\x00\x1f控制字符"][:n])],
        "totals": {"count": 10, "sum_amount": 105.0},
    }


def two_level_result():
    rows = [{"status": s, "month": m, "count": c} for s, m, c in
            [("won", "2026-01-01", 3), ("won", "2026-02-01", 1), ("lost", "2026-01-01", 2), (HOSTILE, "2026-02-01", 5)]]
    return {"columns": [{"key": "status", "label": "状态", "type": "select", "role": "dimension"},
                        {"key": "month", "label": "月", "type": "date", "role": "dimension"},
                        {"key": "count", "label": "count", "type": "integer", "role": "measure"}],
            "rows": rows, "totals": {"count": 11}}


FUNNEL = {"columns": [{"key": "stage", "label": "阶段", "type": "select", "role": "dimension",
                       "options": {"new": "新线索", "won": HOSTILE}},
                      {"key": "count", "label": "count", "type": "integer", "role": "measure"},
                      {"key": "conversion", "label": "conversion", "type": "percent", "role": "measure"}],
          "rows": [{"stage": "new", "count": 10, "conversion": None}, {"stage": "won", "count": 3, "conversion": 30.0}],
          "totals": {"count": 10}}
KPI = {"columns": [{"key": "value", "label": f"NPS {HOSTILE}", "type": "score", "role": "measure"},
                   {"key": "previous", "label": "上期", "type": "score", "role": "measure"},
                   {"key": "change", "label": "变化", "type": "number", "role": "measure"}],
       "rows": [{"value": 42.5, "previous": 40.0, "change": 2.5, "change_pct": 6.25}], "totals": {}}
EMPTY = {"columns": table_result()["columns"], "rows": [], "totals": {}}


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    assert root.get("role") == "img"
    title, desc = root.find(f"{NS}title"), root.find(f"{NS}desc")
    assert title is not None and desc is not None and desc.text
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{NS}text")]


@pytest.mark.parametrize("kind", sorted(CHART_KINDS))
@pytest.mark.parametrize("result", [table_result(), two_level_result(), FUNNEL, KPI, EMPTY, table_result(1)],
                         ids=["table", "two_level", "funnel", "kpi", "empty", "one_row"])
def test_every_chart_is_well_formed_accessible_and_inert(kind, result):
    svg = render_chart(kind, result, TITLE)
    root = parse(svg)
    assert root.find(f"{NS}title").text == TITLE              # escaped going in, intact coming out
    assert "<img" not in svg and "<b>" not in svg
    assert "onerror=alert(1)&gt;" in svg or HOSTILE not in str(result)
    assert "href" not in svg and "url(" not in svg and "@import" not in svg and "<script" not in svg
    assert "\x00" not in svg and "\x1f" not in svg
    assert texts(root)                                      # real text labels, not paths only
    for el in root.iter():                                  # no attribute was broken open by a quote
        assert not any(name.startswith("on") for name in el.attrib)


def test_bar_chart_labels_and_description():
    root = parse(render_chart("bar", table_result(), "按状态"))
    labels = texts(root)
    assert "赢单" in labels and "(blank / 空)" in labels
    assert any(t.startswith("<img src=x") and t.endswith("…") for t in labels)       # clipped to fit
    tips = ["".join(r.find(f"{NS}title").itertext()) for r in root.iter(f"{NS}rect") if r.find(f"{NS}title") is not None]
    assert f"{HOSTILE} · 金额 {HOSTILE}: 21" in tips                                # full text in the tooltip
    desc = root.find(f"{NS}desc").text
    assert "赢单" in desc and "count 1" in desc and "10.50" in desc
    bars = [r for r in root.iter(f"{NS}rect") if r.find(f"{NS}title") is not None]
    assert len(bars) == 8                                   # 4 categories × 2 measures, each with a tooltip


def test_stacked_bar_uses_the_second_dimension_as_series():
    root = parse(render_chart("stacked_bar", two_level_result(), "stack"))
    tips = ["".join(r.find(f"{NS}title").itertext()) for r in root.iter(f"{NS}rect") if r.find(f"{NS}title") is not None]
    assert "won · 2026-01-01: 3" in tips and f"{HOSTILE} · 2026-02-01: 5" in tips
    assert "2026-01-01" in texts(root)                     # legend


def test_line_pie_donut_funnel_number():
    line = parse(render_chart("line", two_level_result(), "line"))
    assert len(list(line.iter(f"{NS}polyline"))) == 2      # one per month
    pie = parse(render_chart("pie", table_result(), "pie"))
    assert len(list(pie.iter(f"{NS}path"))) == 4
    single = parse(render_chart("donut", table_result(1), "one"))
    assert any(c.find(f"{NS}title") is not None for c in single.iter(f"{NS}circle"))   # a full ring, not an arc
    funnel = parse(render_chart("funnel", FUNNEL, "漏斗"))
    assert any("新线索  10" in t for t in texts(funnel)) and any("(30%)" in t for t in texts(funnel))
    number = parse(render_chart("number", KPI, "NPS"))
    assert "42.50" in texts(number) and any("▲ 2.50 (6.25%)" in t for t in texts(number))


def test_empty_result_says_no_data():
    assert "No data / 暂无数据" in texts(parse(render_chart("bar", EMPTY, "x")))


def test_unknown_chart_kind():
    with pytest.raises(ValidationFailed):
        render_chart("radar", table_result(), "x")


def test_ids_are_stable_and_distinct_per_chart():
    a, b = render_chart("bar", table_result(), "a"), render_chart("bar", table_result(), "b")
    assert a == render_chart("bar", table_result(), "a")
    assert parse(a).find(f"{NS}title").get("id") != parse(b).find(f"{NS}title").get("id")
