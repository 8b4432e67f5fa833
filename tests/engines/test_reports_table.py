"""Grouped table reports on SQLite and PostgreSQL, each compared with an independent computation
(Python over the seeded fixture, or hand-written SQL)."""
from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from engines.errors import DefinitionError
from engines.reports import run_report

from .test_reports_fixtures import CUSTOMERS, NOW, ORDERS, SHANGHAI, make_app, seed, utc

APP = make_app()
CUSTOMER = {c["id"]: c for c in CUSTOMERS}


def run(engine, tables, spec, **kw):
    kw.setdefault("tz", SHANGHAI)
    kw.setdefault("now", NOW)
    with engine.connect() as conn:
        return run_report(conn, APP, {"entity": "order", **spec}, tables, **kw)


def bucket_of(dt: datetime | date | None, bucket: str, tz=SHANGHAI) -> str | None:
    if dt is None:
        return None
    d = dt.astimezone(tz).date() if isinstance(dt, datetime) else dt
    if bucket == "week":
        d -= timedelta(days=d.weekday())
    elif bucket == "month":
        d = d.replace(day=1)
    elif bucket == "quarter":
        d = date(d.year, (d.month - 1) // 3 * 3 + 1, 1)
    elif bucket == "year":
        d = date(d.year, 1, 1)
    return d.isoformat()


def amount(o) -> Decimal | None:
    return None if o["amount"] is None else Decimal(o["amount"])


def reference(orders, keyfn) -> dict:
    """Python aggregation of the fixture: group key -> measures, the way the report defines them."""
    groups = defaultdict(list)
    for o in orders:
        groups[keyfn(o)].append(o)
    return {k: summarise(v) for k, v in groups.items()}


def summarise(orders) -> dict:
    amounts = [amount(o) for o in orders if o["amount"] is not None]
    qtys = [o["qty"] for o in orders if o["qty"] is not None]
    return {"count": len(orders),
            "sum_amount": float(sum(amounts)) if amounts else None,
            "avg_amount": round(float(sum(amounts) / len(amounts)), 4) if amounts else None,
            "min_amount": float(min(amounts)) if amounts else None,
            "max_qty": float(max(qtys)) if qtys else None,
            "count_distinct_customer": len({o["customer"] for o in orders if o["customer"] is not None}),
            "count_amount": len(amounts)}


ALL_MEASURES = [{"agg": "count"}, {"agg": "sum", "field": "amount"}, {"agg": "avg", "field": "amount"},
                {"agg": "min", "field": "amount"}, {"agg": "max", "field": "qty"},
                {"agg": "count_distinct", "field": "customer"}, {"agg": "count", "field": "amount"}]


def by_key(result, key) -> dict:
    return {r[key]: {k: v for k, v in r.items() if k != key} for r in result["rows"]}


def approx(d):
    return {k: pytest.approx(v) if isinstance(v, float) else v for k, v in d.items()}


def test_group_by_select_field_every_measure_and_totals(engine):
    tables = seed(engine)
    result = run(engine, tables, {"group_by": ["status"], "measures": ALL_MEASURES})
    expected = reference(ORDERS, lambda o: o["status"])
    got = by_key(result, "status")
    assert set(got) == set(expected)          # None (blank status) is a group of its own
    for key, values in expected.items():
        assert got[key] == approx(values), key
    assert result["totals"] == approx(summarise(ORDERS))
    # ascending by group, blanks last, on both back ends
    assert [r["status"] for r in result["rows"]] == sorted(k for k in expected if k) + [None]
    assert [c["key"] for c in result["columns"]] == ["status", *summarise(ORDERS)]
    assert result["columns"][0]["options"]["won"] == "won"
    assert isinstance(got["won"]["count"], int) and isinstance(got["won"]["sum_amount"], float)


def test_matches_hand_written_sql(engine):
    tables = seed(engine)
    result = run(engine, tables, {"group_by": ["status"], "measures": [{"agg": "count"},
                                                                     {"agg": "sum", "field": "amount"}]})
    with engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT c_status, COUNT(*), SUM(c_amount) FROM e_sales_order "
                                   "GROUP BY c_status")).all()
    assert by_key(result, "status") == {s: {"count": n, "sum_amount": pytest.approx(float(t) if t is not None else None)}
                                        for s, n, t in raw}


def test_no_group_by_is_one_row_equal_to_totals(engine):
    tables = seed(engine)
    result = run(engine, tables, {"measures": ALL_MEASURES})
    assert result["rows"] == [approx(summarise(ORDERS))]
    assert result["totals"] == approx(summarise(ORDERS))


@pytest.mark.parametrize("bucket", ["day", "week", "month", "quarter", "year"])
def test_datetime_buckets_in_app_time_zone(engine, bucket):
    tables = seed(engine)
    result = run(engine, tables, {"group_by": [{"field": "ordered_at", "bucket": bucket}],
                                  "measures": [{"agg": "count"}, {"agg": "sum", "field": "amount"}]})
    expected = reference(ORDERS, lambda o: bucket_of(o["ordered_at"], bucket))
    got = by_key(result, f"ordered_at_{bucket}")
    assert got == {k: approx({"count": v["count"], "sum_amount": v["sum_amount"]}) for k, v in expected.items()}
    assert result["columns"][0]["type"] == "date"


def test_month_boundary_record_is_february_in_shanghai(engine):
    tables = seed(engine, orders=[o for o in ORDERS if o["id"] in (1, 2, 4)])
    result = run(engine, tables, {"group_by": [{"field": "ordered_at", "bucket": "month"}]})
    # order 2 at 2026-01-31T20:00Z is 2026-02-01 04:00 in Shanghai; order 4 at 2025-12-31T16:30Z is January
    assert result["rows"] == [{"ordered_at_month": "2026-01-01", "count": 2},
                              {"ordered_at_month": "2026-02-01", "count": 1}]
    utc_result = run(engine, tables, {"group_by": [{"field": "ordered_at", "bucket": "month"}]}, tz=ZoneInfo("UTC"))
    assert utc_result["rows"] == [{"ordered_at_month": "2025-12-01", "count": 1},
                                  {"ordered_at_month": "2026-01-01", "count": 2}]


DST_ORDERS = [  # instants next to DST changes in 2026 (Europe: 03-29 01:00Z, 10-25 01:00Z; US: 03-08 07:00Z, 11-01 06:00Z)
    utc(2026, 3, 31, 22, 30),   # Berlin 04-01 00:30 (CEST); with the winter offset it would still be March
    utc(2026, 3, 31, 23, 30),
    utc(2026, 10, 31, 23, 30),  # Berlin 11-01 00:30 (CET)
    utc(2026, 11, 1, 4, 30),    # New York 11-01 00:30 (EDT); with EST it would be 10-31
    utc(2026, 11, 1, 6, 30),    # New York 11-01 01:30 (EST)
    utc(2026, 3, 8, 5, 30),     # New York 03-08 00:30 (EST)
    utc(2026, 6, 30, 22, 30),   # Berlin 07-01 00:30, New York 06-30 18:30
    utc(1989, 6, 30, 15, 30),   # Shanghai had DST in 1989: 07-01 00:30 (+09:00)
]


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Asia/Shanghai", "Asia/Kolkata"])
@pytest.mark.parametrize("bucket", ["day", "month"])
def test_buckets_follow_daylight_saving_time(engine, zone, bucket):
    orders = [dict(ORDERS[0], id=i + 1, ordered_at=t) for i, t in enumerate(DST_ORDERS)]
    tables = seed(engine, orders=orders)
    tz = ZoneInfo(zone)
    result = run(engine, tables, {"group_by": [{"field": "ordered_at", "bucket": bucket}]}, tz=tz)
    expected = defaultdict(int)
    for o in orders:
        expected[bucket_of(o["ordered_at"], bucket, tz)] += 1
    assert {r[f"ordered_at_{bucket}"]: r["count"] for r in result["rows"]} == dict(expected)


@pytest.mark.parametrize("bucket", [None, "month", "quarter", "week"])
def test_date_field_groups_and_buckets(engine, bucket):
    tables = seed(engine)
    group = {"field": "due_on", "bucket": bucket} if bucket else "due_on"
    result = run(engine, tables, {"group_by": [group]})
    key = f"due_on_{bucket}" if bucket else "due_on"
    expected = defaultdict(int)
    for o in ORDERS:
        expected[bucket_of(o["due_on"], bucket or "day")] += 1
    assert {r[key]: r["count"] for r in result["rows"]} == dict(expected)


def test_group_by_lookup_path_joins_the_target(engine):
    tables = seed(engine)
    result = run(engine, tables, {"group_by": ["customer.industry"],
                                  "measures": [{"agg": "count"}, {"agg": "sum", "field": "amount"}]})
    expected = reference(ORDERS, lambda o: CUSTOMER[o["customer"]]["industry"] if o["customer"] else None)
    assert by_key(result, "customer.industry") == {
        k: approx({"count": v["count"], "sum_amount": v["sum_amount"]}) for k, v in expected.items()}
    col = result["columns"][0]
    assert col["label"] == "客户 · 行业" and col["options"]["finance"] == "金融"


def test_lookup_used_twice_joins_once_and_measures_through_it(engine):
    tables = seed(engine)
    result = run(engine, tables, {"group_by": ["customer.region", "customer.industry"],
                                  "measures": [{"agg": "count_distinct", "field": "customer.name"}]})
    expected = defaultdict(set)
    for o in ORDERS:
        c = CUSTOMER.get(o["customer"], {})
        expected[(c.get("region"), c.get("industry"))].add(c.get("name"))
    got = {(r["customer.region"], r["customer.industry"]): r["count_distinct_customer_name"] for r in result["rows"]}
    assert got == {k: len({n for n in v if n}) for k, v in expected.items()}


def test_two_level_group_by(engine):
    tables = seed(engine)
    result = run(engine, tables, {"group_by": ["status", {"field": "ordered_at", "bucket": "month"}],
                                  "measures": [{"agg": "count"}, {"agg": "avg", "field": "amount"}]})
    expected = reference(ORDERS, lambda o: (o["status"], bucket_of(o["ordered_at"], "month")))
    got = {(r["status"], r["ordered_at_month"]): {"count": r["count"], "avg_amount": r["avg_amount"]}
           for r in result["rows"]}
    assert got == {k: approx({"count": v["count"], "avg_amount": v["avg_amount"]}) for k, v in expected.items()}
    assert result["totals"]["avg_amount"] == pytest.approx(summarise(ORDERS)["avg_amount"])


def test_pivot_one_column_per_value(engine):
    tables = seed(engine)
    result = run(engine, tables, {"group_by": ["status"], "columns": [{"field": "ordered_at", "bucket": "quarter"}],
                                  "measures": [{"agg": "count"}]})
    quarters = sorted({bucket_of(o["ordered_at"], "quarter") for o in ORDERS if o["ordered_at"]}) + [None]
    pivot_cols = [c for c in result["columns"] if c.get("pivot")]
    assert [c["pivot"]["ordered_at_quarter"] for c in pivot_cols] == quarters
    assert [c["key"] for c in pivot_cols] == [f"count__{q or 'null'}" for q in quarters]
    for row in result["rows"]:
        for q in quarters:
            want = sum(1 for o in ORDERS if o["status"] == row["status"] and bucket_of(o["ordered_at"], "quarter") == q)
            assert row[f"count__{q or 'null'}"] == want
        assert row["count"] == sum(1 for o in ORDERS if o["status"] == row["status"])
    for q in quarters:
        assert result["totals"][f"count__{q or 'null'}"] == sum(
            1 for o in ORDERS if bucket_of(o["ordered_at"], "quarter") == q)
    assert result["totals"]["count"] == len(ORDERS)


def test_pivot_with_two_measures_and_ratio(engine):
    tables = seed(engine)
    result = run(engine, tables, {
        "group_by": ["customer"], "columns": ["vip"],
        "measures": [{"agg": "sum", "field": "amount"}, {"agg": "count"},
                     {"ratio": ["sum_amount", "count"], "label": "客单价", "key": "aov"}]})
    for row in result["rows"]:
        for vip in (True, False, None):
            subset = [o for o in ORDERS if o["customer"] == row["customer"] and o["vip"] is vip]
            s = sum(amount(o) for o in subset if o["amount"] is not None)
            token = {True: "True", False: "False", None: "null"}[vip]
            assert row[f"count__{token}"] == len(subset)
            assert row[f"sum_amount__{token}"] == (pytest.approx(float(s)) if any(o["amount"] for o in subset) else None)
            assert row[f"aov__{token}"] == (pytest.approx(round(float(s) / len(subset), 4)) if subset and s else
                                            (0.0 if subset and any(o["amount"] for o in subset) else None))


def test_ratio_between_measures(engine):
    tables = seed(engine)
    result = run(engine, tables, {"group_by": ["status"], "measures": [
        {"agg": "sum", "field": "amount"}, {"agg": "count"}, {"ratio": ["sum_amount", "count"], "label": "客单价"}]})
    expected = reference(ORDERS, lambda o: o["status"])
    for status, row in by_key(result, "status").items():
        e = expected[status]
        want = None if e["sum_amount"] is None else round(e["sum_amount"] / e["count"], 4)
        assert row["sum_amount_per_count"] == (pytest.approx(want) if want is not None else None)
    t = summarise(ORDERS)
    assert result["totals"]["sum_amount_per_count"] == pytest.approx(round(t["sum_amount"] / t["count"], 4))
    assert [c["type"] for c in result["columns"]][-1] == "ratio"


def test_sort_and_limit_keep_totals_over_everything(engine):
    tables = seed(engine)
    result = run(engine, tables, {"group_by": ["status"], "sort": ["-sum_amount", "status"], "limit": 2,
                                  "measures": [{"agg": "count"}, {"agg": "sum", "field": "amount"}]})
    expected = reference(ORDERS, lambda o: o["status"])
    ranked = sorted(expected.items(), key=lambda kv: (-(kv[1]["sum_amount"] or 0), kv[0] or ""))
    assert [r["status"] for r in result["rows"]] == [k for k, _ in ranked[:2]]
    assert result["totals"]["count"] == len(ORDERS)
    assert result["totals"]["sum_amount"] == pytest.approx(summarise(ORDERS)["sum_amount"])
    assert result["truncated"] is False
    top = run(engine, tables, {"group_by": ["status"], "sort": ["count"], "limit": 1},
              params={"sort": ["-count", "status"]})
    assert top["rows"] == [{"status": "won", "count": 3}]


def test_where_clause_is_anded_into_rows_and_totals(engine):
    tables = seed(engine)
    where = tables.column("order", "owner") == 1
    result = run(engine, tables, {"group_by": ["customer.industry"], "measures": ALL_MEASURES}, where=where)
    mine = [o for o in ORDERS if o["owner"] == 1]
    expected = reference(mine, lambda o: CUSTOMER[o["customer"]]["industry"] if o["customer"] else None)
    assert by_key(result, "customer.industry") == {k: approx(v) for k, v in expected.items()}
    assert result["totals"] == approx(summarise(mine))


def test_request_params_date_range_and_owner(engine):
    tables = seed(engine)
    params = {"date_field": "ordered_at", "date_from": "2026-02-01", "date_to": "2026-02-28", "owner": [1, 3]}
    result = run(engine, tables, {"group_by": ["status"]}, params=params)
    start, end = datetime(2026, 2, 1, tzinfo=SHANGHAI), datetime(2026, 3, 1, tzinfo=SHANGHAI)
    picked = [o for o in ORDERS if o["ordered_at"] and start <= o["ordered_at"] < end and o["owner"] in (1, 3)]
    assert {o["id"] for o in picked} == {2, 5, 6}   # 2 is 02-01 04:00 local, 6 02-28 23:59, 11 03-01 00:01
    assert by_key(result, "status") == {k: {"count": v["count"]} for k, v in reference(picked, lambda o: o["status"]).items()}
    due = run(engine, tables, {"measures": [{"agg": "count"}]},
              params={"date_field": "due_on", "date_from": "2026-03-01", "date_to": "2026-03-31"})
    assert due["totals"]["count"] == sum(1 for o in ORDERS if o["due_on"] and date(2026, 3, 1) <= o["due_on"] <= date(2026, 3, 31))


def test_empty_data(engine):
    tables = seed(engine, orders=[])
    result = run(engine, tables, {"group_by": ["status", {"field": "ordered_at", "bucket": "month"}],
                                  "measures": ALL_MEASURES})
    assert result["rows"] == []
    assert result["totals"] == {"count": 0, "sum_amount": None, "avg_amount": None, "min_amount": None,
                                "max_qty": None, "count_distinct_customer": 0, "count_amount": 0}
    flat = run(engine, tables, {"measures": ALL_MEASURES})
    assert flat["rows"] == [flat["totals"]] and flat["totals"]["count"] == 0
    pivot = run(engine, tables, {"group_by": ["status"], "columns": ["vip"]})
    assert pivot["rows"] == [] and pivot["totals"] == {"count": 0}


def test_boolean_groups_and_min_max_dates(engine):
    tables = seed(engine)
    result = run(engine, tables, {"group_by": ["vip"], "measures": [
        {"agg": "count"}, {"agg": "min", "field": "due_on"}, {"agg": "max", "field": "ordered_at"}]})
    for vip, row in by_key(result, "vip").items():
        subset = [o for o in ORDERS if o["vip"] is vip]
        dues = [o["due_on"] for o in subset if o["due_on"]]
        ats = [o["ordered_at"] for o in subset if o["ordered_at"]]
        assert row["count"] == len(subset)
        assert row["min_due_on"] == (min(dues).isoformat() if dues else None)
        assert row["max_ordered_at"] == (max(ats).astimezone(SHANGHAI).isoformat() if ats else None)
    assert result["totals"]["max_ordered_at"] == max(o["ordered_at"] for o in ORDERS if o["ordered_at"]).astimezone(
        SHANGHAI).isoformat()


def test_invalid_spec_is_refused_before_any_query(engine):
    tables = seed(engine)
    with pytest.raises(DefinitionError) as info:
        run(engine, tables, {"group_by": ["statsu"], "limit": 10**6})
    locations = [d["location"] for d in info.value.details]
    assert locations == ["group_by[0].field", "limit"]
    assert "did you mean `status`" in info.value.details[0]["message"]


def test_datetime_without_bucket_groups_by_local_day(engine):
    tables = seed(engine)
    result = run(engine, tables, {"group_by": ["ordered_at"]})
    expected = defaultdict(int)
    for o in ORDERS:
        expected[bucket_of(o["ordered_at"], "day")] += 1
    assert {r["ordered_at"]: r["count"] for r in result["rows"]} == dict(expected)


def test_now_may_be_naive_utc(engine):
    tables = seed(engine)
    a = run(engine, tables, {"group_by": ["status"]}, now=NOW.replace(tzinfo=None))
    b = run(engine, tables, {"group_by": ["status"]}, now=NOW.astimezone(UTC))
    assert a == b


def test_where_reaches_every_query_pivot_values_and_distinct_totals(engine):
    tables = seed(engine)
    where = tables.column("order", "owner") == 3   # orders 6 (lost, customer 2) and 7 (new, customer 3)
    result = run(engine, tables, {"group_by": ["status"], "columns": [{"field": "ordered_at", "bucket": "month"}],
                                  "measures": [{"agg": "count_distinct", "field": "customer"}]}, where=where)
    months = [c["pivot"]["ordered_at_month"] for c in result["columns"] if c.get("pivot")]
    assert months == ["2026-02-01", "2026-03-01"]      # only the readable rows' months become columns
    assert result["rows"] == [
        {"status": "lost", "count_distinct_customer__2026-02-01": 1, "count_distinct_customer__2026-03-01": 0,
         "count_distinct_customer": 1},
        {"status": "new", "count_distinct_customer__2026-02-01": 0, "count_distinct_customer__2026-03-01": 1,
         "count_distinct_customer": 1}]
    assert result["totals"] == {"count_distinct_customer__2026-02-01": 1, "count_distinct_customer__2026-03-01": 1,
                                "count_distinct_customer": 2}


def test_pivot_keys_stay_distinct_and_the_row_cap_is_reported(engine, monkeypatch):
    import engines.reports.table as table_module

    orders = [dict(ORDERS[0], id=i + 1, note=note) for i, note in enumerate(["null", None, "a", "b", "c"])]
    tables = seed(engine, orders=orders)
    result = run(engine, tables, {"group_by": ["status"], "columns": ["note"]})
    keys = [c["key"] for c in result["columns"] if c.get("pivot")]
    assert len(keys) == len(set(keys)) == 5
    monkeypatch.setattr(table_module, "MAX_LIMIT", 2)
    capped = run(engine, tables, {"group_by": ["note"]})
    assert len(capped["rows"]) == 2 and capped["truncated"] is True and capped["totals"]["count"] == 5
    assert run(engine, tables, {"group_by": ["note"], "limit": 2})["truncated"] is False
