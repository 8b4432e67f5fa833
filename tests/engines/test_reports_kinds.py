"""Funnel, KPI and RFM reports on SQLite and PostgreSQL against hand-computed values."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from engines.reports import run_report

from .test_reports_fixtures import NOW, ORDERS, SHANGHAI, SURVEYS, make_app, seed

APP = make_app()
FUNNEL = {"kind": "funnel", "entity": "order", "stage_field": "status",
          "stages": ["new", "contacted", "qualified", "proposal", "won"]}


def run(engine, tables, spec, **kw):
    kw.setdefault("tz", SHANGHAI)
    kw.setdefault("now", NOW)
    with engine.connect() as conn:
        return run_report(conn, APP, spec, tables, **kw)


# -- funnel ------------------------------------------------------------------------------------
def test_funnel_counts_records_at_a_stage_or_later(engine):
    tables = seed(engine)
    result = run(engine, tables, FUNNEL)
    # statuses: won 3, proposal 1, qualified 2, contacted 2, new 2; lost 1 and blank 1 are not in the funnel
    assert result["rows"] == [
        {"stage": "new", "count": 10, "conversion": None, "overall_conversion": 100.0},
        {"stage": "contacted", "count": 8, "conversion": 80.0, "overall_conversion": 80.0},
        {"stage": "qualified", "count": 6, "conversion": 75.0, "overall_conversion": 60.0},
        {"stage": "proposal", "count": 4, "conversion": 66.67, "overall_conversion": 40.0},
        {"stage": "won", "count": 3, "conversion": 75.0, "overall_conversion": 30.0},
    ]
    assert result["totals"] == {"count": 10, "conversion": 30.0}


def test_funnel_matches_python_and_respects_where(engine):
    tables = seed(engine)
    result = run(engine, tables, FUNNEL, where=tables.column("order", "owner") == 1)
    stages = FUNNEL["stages"]
    mine = [o for o in ORDERS if o["owner"] == 1]
    expected = [sum(1 for o in mine if o["status"] in stages[i:]) for i in range(len(stages))]
    assert [r["count"] for r in result["rows"]] == expected


def test_funnel_on_empty_data(engine):
    tables = seed(engine, orders=[])
    result = run(engine, tables, FUNNEL)
    assert [r["count"] for r in result["rows"]] == [0] * 5
    assert all(r["conversion"] is None for r in result["rows"])
    assert result["totals"] == {"count": 0, "conversion": None}


# -- KPI ---------------------------------------------------------------------------------------
def test_nps_is_promoters_minus_detractors_over_answers(engine):
    tables = seed(engine)
    result = run(engine, tables, {"kind": "kpi", "entity": "survey", "measure": {"nps": "score"}})
    assert result["rows"] == [{"value": 0.0, "responses": 8, "promoters": 3, "detractors": 3, "passives": 2}]
    answers = [s["score"] for s in SURVEYS if s["score"] is not None]
    promoters = sum(1 for a in answers if a >= 9) / len(answers) * 100
    detractors = sum(1 for a in answers if a <= 6) / len(answers) * 100
    assert result["rows"][0]["value"] == round(promoters - detractors, 2)


def test_nps_skewed_and_csat(engine):
    surveys = [dict(id=i + 1, score=s, csat=c) for i, (s, c) in
               enumerate([(10, 5), (10, 5), (9, 4), (7, 3), (2, 1), (None, 4), (10, None)])]
    tables = seed(engine, surveys=surveys)
    nps = run(engine, tables, {"kind": "kpi", "entity": "survey", "measure": {"nps": "score"}})
    assert nps["rows"][0]["value"] == 50.0        # 4 promoters, 1 detractor of 6 answers
    csat = run(engine, tables, {"kind": "kpi", "entity": "survey", "measure": {"csat": "csat"}, "label": "满意度"})
    assert csat["rows"][0] == {"value": 66.67, "responses": 6, "satisfied": 4}
    assert csat["columns"][0] == {"key": "value", "label": "满意度", "type": "percent", "role": "measure"}


@pytest.mark.parametrize(("measure", "expected"), [
    ({"count": None}, len(ORDERS)),
    ({"count": "amount"}, sum(1 for o in ORDERS if o["amount"] is not None)),
    ({"sum": "amount"}, pytest.approx(sum(float(o["amount"]) for o in ORDERS if o["amount"]))),
    ({"avg": "qty"}, pytest.approx(round(sum(o["qty"] for o in ORDERS if o["qty"] is not None) / 11, 4))),
    ({"max": "due_on"}, "2026-03-31"),
    ({"count_distinct": "customer"}, 4),
])
def test_kpi_aggregates(engine, measure, expected):
    tables = seed(engine)
    result = run(engine, tables, {"kind": "kpi", "entity": "order", "measure": measure})
    assert result["rows"][0]["value"] == expected


def test_kpi_period_compares_with_the_previous_period(engine):
    tables = seed(engine)
    result = run(engine, tables, {"kind": "kpi", "entity": "order", "measure": {"sum": "amount"},
                                  "period": {"field": "ordered_at", "days": 30}})
    end = NOW
    cur = [o for o in ORDERS if o["ordered_at"] and end - timedelta(30) < o["ordered_at"] <= end]
    prev = [o for o in ORDERS if o["ordered_at"] and end - timedelta(60) < o["ordered_at"] <= end - timedelta(30)]
    value = sum(float(o["amount"]) for o in cur if o["amount"])
    previous = sum(float(o["amount"]) for o in prev if o["amount"])
    row = result["rows"][0]
    assert (row["value"], row["previous"]) == (pytest.approx(970.24), pytest.approx(800.0))
    assert (row["value"], row["previous"]) == (pytest.approx(value), pytest.approx(previous))
    assert row["change"] == pytest.approx(170.24) and row["change_pct"] == 21.28


def test_kpi_period_on_a_date_field_uses_local_today(engine):
    tables = seed(engine)
    result = run(engine, tables, {"kind": "kpi", "entity": "order", "measure": {"count": None},
                                  "period": {"field": "due_on", "days": 30}})
    today = NOW.astimezone(SHANGHAI).date()       # 2026-03-15
    cur = sum(1 for o in ORDERS if o["due_on"] and today - timedelta(30) < o["due_on"] <= today)
    prev = sum(1 for o in ORDERS if o["due_on"] and today - timedelta(60) < o["due_on"] <= today - timedelta(30))
    assert result["rows"][0] == {"value": cur, "previous": prev, "change": cur - prev,
                                 "change_pct": round((cur - prev) * 100 / prev, 2)}
    assert (cur, prev) == (3, 2)


def test_kpi_on_empty_data(engine):
    tables = seed(engine, surveys=[])
    result = run(engine, tables, {"kind": "kpi", "entity": "survey", "measure": {"nps": "score"},
                                  "period": {"field": "created_at", "days": 7}})
    assert result["rows"][0]["value"] is None and result["rows"][0]["previous"] is None
    assert result["rows"][0]["responses"] == 0 and result["rows"][0]["change"] is None


# -- RFM ---------------------------------------------------------------------------------------
RFM = {"kind": "rfm", "entity": "order", "customer": "customer", "date": "ordered_at", "amount": "amount"}


def test_rfm_of_the_fixture_by_hand(engine):
    tables = seed(engine)
    result = run(engine, tables, RFM)
    # today is 2026-03-15 in Shanghai; customer 1's last order is 03-10 17:00 local, customer 2's is
    # 02-28 23:59 local, customer 3's 03-01, customer 4's 03-15 07:00 local. Order 10 has no customer.
    rows = {r["customer"]: r for r in result["rows"]}
    assert {c: (r["recency"], r["frequency"], r["monetary"]) for c, r in rows.items()} == {
        1: (5, 4, 2300.76), 2: (15, 3, 749.99), 3: (14, 2, 42.0), 4: (0, 2, 70.0)}
    assert result["means"] == {"recency": 8.5, "frequency": 2.75, "monetary": 790.6875}
    assert {c: r["segment"] for c, r in rows.items()} == {
        1: "important_value", 2: "general_keep", 3: "general_retain", 4: "general_develop"}
    assert rows[1]["segment_label"] == "重要价值" and (rows[2]["r"], rows[2]["f"], rows[2]["m"]) == ("low", "high", "low")
    assert [r["customer"] for r in result["rows"]] == [1, 2, 4, 3]      # by monetary, descending
    assert result["totals"] == {"customers": 4, "frequency": 11, "monetary": pytest.approx(3162.75)}


def _rfm_orders():
    """Eight customers, one per segment. Means: R 30.75 days, F 3 orders, M 480."""
    plan = {1: (1, 5, 1000), 2: (2, 1, 900), 3: (60, 5, 1000), 4: (60, 1, 900),
            5: (1, 5, 10), 6: (2, 1, 10), 7: (60, 5, 10), 8: (60, 1, 10)}
    today = NOW.astimezone(SHANGHAI).date()
    orders, n = [], 0
    for customer, (recency, frequency, monetary) in plan.items():
        for k in range(frequency):
            n += 1
            day = today - timedelta(days=recency + 3 * k)
            at = datetime(day.year, day.month, day.day, 10, 0, tzinfo=SHANGHAI)
            orders.append(dict(ORDERS[0], id=n, customer=customer, ordered_at=at,
                               amount=f"{monetary / frequency:.2f}", status="won"))
    return plan, orders


def test_rfm_names_all_eight_segments(engine):
    plan, orders = _rfm_orders()
    tables = seed(engine, orders=orders)
    result = run(engine, tables, {**RFM, "sort": ["customer"]})
    assert [r["segment"] for r in result["rows"]] == [
        "important_value", "important_develop", "important_keep", "important_retain",
        "general_value", "general_develop", "general_keep", "general_retain"]
    assert [(r["recency"], r["frequency"], r["monetary"]) for r in result["rows"]] == [
        (p[0], p[1], pytest.approx(p[2])) for p in plan.values()]
    assert result["means"] == {"recency": 30.75, "frequency": 3.0, "monetary": 480.0}
    assert [(s["segment"], s["label"], s["customers"]) for s in result["summary"]] == [
        ("important_value", "重要价值", 1), ("important_develop", "重要发展", 1), ("important_keep", "重要保持", 1),
        ("important_retain", "重要挽留", 1), ("general_value", "一般价值", 1), ("general_develop", "一般发展", 1),
        ("general_keep", "一般保持", 1), ("general_retain", "一般挽留", 1)]
    top = run(engine, tables, {**RFM, "limit": 2, "sort": ["-frequency", "recency"]})
    assert [r["customer"] for r in top["rows"]] == [1, 5]
    assert sum(s["customers"] for s in top["summary"]) == 8     # the summary covers every customer


def test_rfm_with_a_date_field_and_where(engine):
    tables = seed(engine)
    result = run(engine, tables, {**RFM, "date": "due_on"}, where=tables.column("order", "owner") != 3)
    rows = {r["customer"]: (r["recency"], r["frequency"]) for r in result["rows"]}
    # customer 3 keeps only order 8 (due 2025-12-01); customer 2 loses order 6 (owner 3)
    assert rows[3] == ((NOW.astimezone(SHANGHAI).date() - datetime(2025, 12, 1).date()).days, 1)
    assert rows[2] == (73, 1)   # order 4 due 2026-01-01; order 5 has no due date


def test_rfm_on_empty_data(engine):
    tables = seed(engine, orders=[])
    result = run(engine, tables, RFM)
    assert result["rows"] == [] and result["totals"] == {"customers": 0, "frequency": 0, "monetary": None}
    assert all(s["customers"] == 0 for s in result["summary"])
