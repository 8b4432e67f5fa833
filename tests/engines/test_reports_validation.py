"""Save-time checks of report specs: every problem located, with a suggestion where one helps."""
from __future__ import annotations

import pytest

from engines.reports import validate_report

from .test_reports_fixtures import APP_DICT, make_app

APP = make_app(flows=[{"key": "pipeline", "entity": "order", "state_field": "status",
                       "states": [{"key": "new"}, {"key": "archived", "label": "归档"}]}])


def problems(spec: dict) -> list[tuple[str, str]]:
    return [(p["location"], p["message"]) for p in validate_report(APP, spec)]


def only(spec: dict) -> tuple[str, str]:
    found = problems(spec)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("spec", APP_DICT["reports"][:4] + [
    {"entity": "order", "group_by": ["customer.industry", {"field": "created_at", "bucket": "week"}],
     "columns": ["vip"], "measures": [{"agg": "sum", "field": "amount", "key": "total"}, {"agg": "count"},
                                      {"ratio": ["total", "count"], "label": "客单价"}],
     "sort": ["-total"], "limit": 10, "filter": "status != 'lost' and customer.industry == 'retail'", "chart": "stacked_bar"},
    {"kind": "kpi", "entity": "order", "measure": {"ratio": {"numerator": "status == 'won'", "denominator": "True"}},
     "period": {"field": "ordered_at", "days": 30}},
    {"kind": "kpi", "entity": "survey", "measure": {"csat": "csat"}},
    {"kind": "rfm", "entity": "order", "customer": "customer", "date": "due_on", "amount": "qty", "sort": ["-recency"]},
    {"kind": "funnel", "entity": "order", "stage_field": "status", "stages": ["new", "archived"]},   # a flow state
])
def test_valid_specs_have_no_problems(spec):
    assert validate_report(APP, spec) == []


def test_unknown_field_suggests_the_closest():
    location, message = only({"entity": "order", "group_by": ["statsu"]})
    assert location == "group_by[0].field"
    assert "unknown field `statsu`" in message and "did you mean `status`" in message


def test_unknown_field_through_a_lookup():
    location, message = only({"entity": "order", "group_by": ["customer.industy"]})
    assert location == "group_by[0].field" and "did you mean `industry`" in message
    location, message = only({"entity": "order", "group_by": ["status.industry"]})
    assert "not a lookup" in message


def test_sum_of_a_text_field():
    location, message = only({"entity": "order", "measures": [{"agg": "sum", "field": "note"}]})
    assert location == "measures[0].field" and "not a number" in message and "求和" in message


def test_avg_of_a_select_and_min_of_a_boolean():
    assert only({"entity": "order", "measures": [{"agg": "avg", "field": "status"}]})[0] == "measures[0].field"
    assert only({"entity": "order", "measures": [{"agg": "min", "field": "vip"}]})[0] == "measures[0].field"


def test_bucket_on_a_non_date():
    location, message = only({"entity": "order", "group_by": [{"field": "amount", "bucket": "month"}]})
    assert location == "group_by[0].bucket" and "not a date" in message


@pytest.mark.parametrize("limit", [100_000, 0, -1, "10", 2.5, True])
def test_limit_must_be_an_int_in_range(limit):
    location, message = only({"entity": "order", "group_by": ["status"], "limit": limit})
    assert location == "limit" and "10000" in message


@pytest.mark.parametrize(("spec", "location", "hint"), [
    ({"entity": "order", "group_by": [{"field": "ordered_at", "bucket": "fortnight"}]}, "group_by[0].bucket", "unknown bucket"),
    ({"entity": "order", "measures": [{"agg": "median", "field": "amount"}]}, "measures[0].agg", "unknown aggregation"),
    ({"entity": "order", "kind": "pie"}, "kind", "unknown report kind"),
    ({"entity": "order", "chart": "bars"}, "chart", "did you mean `bar`"),
    ({"entity": "orders"}, "entity", "did you mean `order`"),
    ({"entity": "order", "goup_by": ["status"]}, "goup_by", "did you mean `group_by`"),
    ({"entity": "order", "sort": ["-total"]}, "sort[0]", "cannot sort by `-total`"),
    ({"entity": "order", "measures": [{"agg": "sum"}]}, "measures[0].field", "needs a field"),
    ({"entity": "order", "measures": [{"agg": "count"}, {"ratio": ["count", "sum_amount"]}]}, "measures", "unknown measure"),
    ({"entity": "order", "measures": [{"agg": "count"}, {"agg": "count"}]}, "measures", "share the key"),
    ({"entity": "order", "group_by": ["status"], "columns": ["status"]}, "columns", "both a row and a column"),
    ({"entity": "order", "group_by": ["customer.name.x"]}, "group_by[0].field", "not a lookup"),
])
def test_unknown_names(spec, location, hint):
    found = problems(spec)
    assert [loc for loc, _ in found] == [location], found
    assert hint in found[0][1]


def test_bad_filter_expression_has_a_position():
    found = validate_report(APP, {"entity": "order", "filter": "status == 'won' and amout > 3"})
    assert found == [{"location": "filter", "message": found[0]["message"], "position": 20}]
    assert "amout" in found[0]["message"] and "amount" in found[0]["message"]
    assert validate_report(APP, {"entity": "order", "filter": "amount"})[0]["location"] == "filter"
    assert validate_report(APP, {"entity": "order", "filter": ""})[0]["location"] == "filter"


def test_funnel_stages_must_be_options_of_the_stage_field():
    found = problems({"kind": "funnel", "entity": "order", "stage_field": "status", "stages": ["new", "signed"]})
    assert found[0][0] == "stages[1]" and "not an option" in found[0][1]
    assert problems({"kind": "funnel", "entity": "order", "stage_field": "note", "stages": ["a"]})[0][0] == "stage_field"
    assert problems({"kind": "funnel", "entity": "order", "stage_field": "status", "stages": []})[0][0] == "stages"


@pytest.mark.parametrize(("changes", "location"), [
    ({"customer": "status"}, "customer"),
    ({"customer": "customer.industry"}, "customer"),
    ({"date": "amount"}, "date"),
    ({"amount": "note"}, "amount"),
    ({"amount": "nothing"}, "amount"),
])
def test_rfm_fields_of_the_wrong_type(changes, location):
    spec = {"kind": "rfm", "entity": "order", "customer": "customer", "date": "ordered_at", "amount": "amount"}
    assert [loc for loc, _ in problems({**spec, **changes})] == [location]


@pytest.mark.parametrize(("measure", "location"), [
    ({"sum": "note"}, "measure.sum"),
    ({"nps": "status"}, "measure.nps"),
    ({"median": "amount"}, "measure"),
    ({"ratio": {"numerator": "statsu == 'won'"}}, "measure.ratio.numerator"),
    ({"ratio": {"denominator": "True"}}, "measure.ratio"),
    ({"sum": "amount", "avg": "amount"}, "measure"),
])
def test_kpi_measures(measure, location):
    assert [loc for loc, _ in problems({"kind": "kpi", "entity": "order", "measure": measure})] == [location]


def test_kpi_period():
    spec = {"kind": "kpi", "entity": "order", "measure": {"count": None}}
    assert [x[0] for x in problems({**spec, "period": {"field": "note", "days": 7}})] == ["period.field"]
    assert [x[0] for x in problems({**spec, "period": {"field": "ordered_at", "days": 0}})] == ["period.days"]


def test_messages_are_bilingual():
    for spec in ({"entity": "order", "group_by": ["statsu"]}, {"entity": "order", "limit": 0},
                 {"entity": "order", "measures": [{"agg": "sum", "field": "note"}]}):
        message = problems(spec)[0][1]
        assert " / " in message and any("\u4e00" <= ch <= "\u9fff" for ch in message)


def test_not_a_dict():
    assert validate_report(APP, ["entity"])[0]["location"] == ""


def test_a_filter_that_cannot_run_in_sql_is_refused_at_save_time():
    found = validate_report(APP, {"entity": "order", "filter": "status != 'lost' and due_on == ordered_at"})
    assert [(p["location"], p["position"]) for p in found] == [("filter", 21)]
    assert "SQL" in found[0]["message"]
