"""Report filters (the expression language pushed down to SQL), KPI ratios and drill-down."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from engines.errors import DefinitionError
from engines.reports import drilldown_filter, run_report

from .test_reports_fixtures import CUSTOMERS, NOW, ORDERS, SHANGHAI, make_app, seed

APP = make_app()
CUSTOMER = {c["id"]: c for c in CUSTOMERS}


def run(engine, tables, spec, **kw):
    kw.setdefault("tz", SHANGHAI)
    kw.setdefault("now", NOW)
    with engine.connect() as conn:
        return run_report(conn, APP, {"entity": "order", **spec}, tables, **kw)


def count(engine, tables, text, **kw) -> int:
    return run(engine, tables, {"filter": text, "measures": [{"agg": "count"}]}, **kw)["totals"]["count"]


def industry(o):
    return CUSTOMER[o["customer"]]["industry"] if o["customer"] else None


FEB_1 = datetime(2026, 2, 1, tzinfo=SHANGHAI)


@pytest.mark.parametrize(("text", "keep"), [
    ("status == 'won'", lambda o: o["status"] == "won"),
    ("status != 'lost' and amount > 100", lambda o: o["status"] not in ("lost", None) and o["amount"] and float(o["amount"]) > 100),
    ("customer.industry == 'retail'", lambda o: industry(o) == "retail"),
    ("ISBLANK(customer.industry)", lambda o: industry(o) is None),
    ("ordered_at >= DATE(2026, 2, 1)", lambda o: o["ordered_at"] is not None and o["ordered_at"] >= FEB_1),
    ("ordered_at >= TODAY() - DAYS(30)",
     lambda o: o["ordered_at"] is not None and o["ordered_at"] >= datetime(2026, 2, 13, tzinfo=SHANGHAI)),
    ("vip", lambda o: o["vip"] is True),
    ("status in ['new', 'contacted'] or ISBLANK(status)", lambda o: o["status"] in ("new", "contacted", None)),
])
def test_filters_select_the_same_records_as_python(engine, text, keep):
    tables = seed(engine)
    assert count(engine, tables, text) == sum(1 for o in ORDERS if keep(o))


def test_filter_where_and_params_filter_are_all_anded(engine):
    tables = seed(engine)
    where = tables.column("order", "owner") == 1
    result = run(engine, tables, {"filter": "status != 'lost'", "group_by": ["customer.industry"]}, where=where,
                 params={"filter": "amount >= 50"})
    expected: dict = {}
    for o in ORDERS:
        if o["owner"] == 1 and o["status"] not in ("lost", None) and o["amount"] and float(o["amount"]) >= 50:
            expected[industry(o)] = expected.get(industry(o), 0) + 1
    assert {r["customer.industry"]: r["count"] for r in result["rows"]} == expected


def test_a_bad_request_filter_is_refused(engine):
    tables = seed(engine)
    with pytest.raises(DefinitionError) as info:
        run(engine, tables, {}, params={"filter": "amout > 1"})
    assert info.value.details[0]["location"] == "filter" and info.value.details[0]["position"] == 0


def test_kpi_ratio_of_two_filters(engine):
    tables = seed(engine)
    win = {"kind": "kpi", "label": "赢单率", "measure": {"ratio": {"numerator": "status == 'won'",
                                                                 "denominator": "status in ['won', 'lost']"}}}
    row = run(engine, tables, win)["rows"][0]
    assert row == {"value": 75.0, "numerator": 3, "denominator": 4}
    share = run(engine, tables, {"kind": "kpi", "measure": {"ratio": {"numerator": "vip"}}})["rows"][0]
    assert share["value"] == round(sum(1 for o in ORDERS if o["vip"]) * 100 / len(ORDERS), 2)
    period = run(engine, tables, {**win, "period": {"field": "ordered_at", "days": 45}})["rows"][0]
    cur = [o for o in ORDERS if o["ordered_at"] and NOW - timedelta(45) < o["ordered_at"] <= NOW]
    prev = [o for o in ORDERS if o["ordered_at"] and NOW - timedelta(90) < o["ordered_at"] <= NOW - timedelta(45)]

    def rate(rows):
        won = sum(1 for o in rows if o["status"] == "won")
        closed = sum(1 for o in rows if o["status"] in ("won", "lost"))
        return round(won * 100 / closed, 2) if closed else None

    assert (period["value"], period["previous"]) == (rate(cur), rate(prev))


DRILL_SPECS = [
    {"group_by": ["status"]},
    {"group_by": [{"field": "ordered_at", "bucket": "month"}]},
    {"group_by": [{"field": "ordered_at", "bucket": "week"}, "vip"], "filter": "status != 'lost'"},
    {"group_by": ["customer.industry", {"field": "due_on", "bucket": "quarter"}]},
    {"group_by": ["due_on", "customer"]},
    {"group_by": ["note"]},
]


@pytest.mark.parametrize("spec", DRILL_SPECS)
def test_drilldown_selects_exactly_the_records_of_each_row(engine, spec):
    tables = seed(engine)
    result = run(engine, tables, spec)
    assert result["rows"]
    for row in result["rows"]:
        text = drilldown_filter(APP, {"entity": "order", **spec}, row)
        assert count(engine, tables, text) == row["count"], text


def test_drilldown_into_a_pivot_cell(engine):
    tables = seed(engine)
    spec = {"group_by": ["status"], "columns": [{"field": "ordered_at", "bucket": "month"}]}
    result = run(engine, tables, spec)
    cells = [c for c in result["columns"] if c.get("pivot")]
    for row in result["rows"]:
        for col in cells:
            text = drilldown_filter(APP, {"entity": "order", **spec}, row, col)
            assert count(engine, tables, text) == row[col["key"]], text


def test_drilldown_text():
    spec = {"entity": "order", "filter": "amount > 0", "group_by": [{"field": "ordered_at", "bucket": "month"}, "note"]}
    text = drilldown_filter(APP, spec, {"ordered_at_month": "2026-12-01", "note": "it's \\ \"中文\"", "count": 1})
    assert text == ("(amount > 0) and ordered_at >= DATE(2026, 12, 1) and ordered_at < DATE(2027, 1, 1) and "
                    "note == 'it\\'s \\\\ \"中文\"'")
    assert drilldown_filter(APP, {"entity": "order", "group_by": ["status"]}, {"status": None}) == "ISBLANK(status)"


def test_drilldown_of_funnel_and_rfm(engine):
    tables = seed(engine)
    funnel = APP.report("funnel")
    with engine.connect() as conn:
        rows = run_report(conn, APP, funnel, tables, tz=SHANGHAI, now=NOW)["rows"]
    for row in rows:
        assert count(engine, tables, drilldown_filter(APP, funnel, row)) == row["count"]
    rfm = {"kind": "rfm", "entity": "order", "customer": "customer", "date": "ordered_at", "amount": "amount"}
    for row in run(engine, tables, rfm)["rows"]:
        assert count(engine, tables, drilldown_filter(APP, rfm, row)) == row["frequency"]
