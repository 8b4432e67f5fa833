"""Dashboards: widgets run with the viewer's row filter and filters; broken widgets fail alone."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

import pytest

from engines.errors import NotFound, PermissionDenied, ValidationFailed
from engines.reports import run_dashboard

from .test_reports_fixtures import NOW, ORDERS, SHANGHAI, make_app, seed, utc

APP = make_app()


def dashboard(engine, tables, where_for=lambda entity: None, **kw):
    with engine.connect() as conn:
        return run_dashboard(conn, APP, "sales", tables, tz=SHANGHAI, now=NOW, where_for=where_for, **kw)


def counts(widget, key):
    return {r[key]: r["count"] for r in widget["result"]["rows"]}


def created(o):
    return o["ordered_at"] or utc(2026, 1, 10)


def test_every_widget_runs_and_draws(engine):
    tables = seed(engine)
    dash = dashboard(engine, tables)
    assert dash["key"] == "sales" and dash["label"] == "销售看板"
    widgets = {w["report"]: w for w in dash["widgets"]}
    assert [w["report"] for w in dash["widgets"]] == ["by_status", "funnel", "nps", "by_month", "missing", "broken"]
    assert [(w["width"], w["chart"]) for w in dash["widgets"][:4]] == [(6, "bar"), (6, "funnel"), (3, "number"), (12, "line")]
    assert widgets["missing"]["error"]["code"] == "not_found"
    assert widgets["broken"]["error"]["code"] == "validation_failed"
    assert widgets["broken"]["error"]["details"][0]["location"] == "group_by[0].field"
    for key in ("by_status", "funnel", "nps", "by_month"):
        root = ET.fromstring(widgets[key]["svg"])
        assert root.get("role") == "img"
    assert counts(widgets["by_status"], "status")["won"] == 3
    assert widgets["nps"]["result"]["rows"][0]["value"] == 0.0


def test_where_for_limits_every_widget_to_readable_rows(engine):
    tables = seed(engine)

    def where_for(entity):
        if entity == "survey":
            raise PermissionDenied("no access / 无权访问")
        return tables.column(entity, "owner") == 1

    widgets = {w["report"]: w for w in dashboard(engine, tables, where_for)["widgets"]}
    mine = [o for o in ORDERS if o["owner"] == 1]
    assert sum(counts(widgets["by_status"], "status").values()) == len(mine)
    assert widgets["funnel"]["result"]["rows"][0]["count"] == sum(1 for o in mine if o["status"] not in (None, "lost"))
    assert widgets["nps"]["error"]["code"] == "forbidden" and "svg" not in widgets["nps"]


def test_date_range_and_owner_filters_apply_to_each_widget(engine):
    tables = seed(engine)
    filters = {"date_from": "2026-02-01", "date_to": "2026-03-31", "owner": [1, 2]}
    widgets = {w["report"]: w for w in dashboard(engine, tables, filters=filters)["widgets"]}
    start, end = datetime(2026, 2, 1, tzinfo=SHANGHAI), datetime(2026, 4, 1, tzinfo=SHANGHAI)
    # by_month names ordered_at as its date field; by_status falls back to created_at
    assert widgets["by_month"]["date_field"] == "ordered_at" and widgets["by_status"]["date_field"] == "created_at"
    picked = [o for o in ORDERS if o["ordered_at"] and start <= o["ordered_at"] < end and o["owner"] in (1, 2)]
    assert sum(counts(widgets["by_month"], "ordered_at_month").values()) == len(picked)
    assert counts(widgets["by_month"], "ordered_at_month") == {"2026-02-01": 2, "2026-03-01": 3}
    by_created = [o for o in ORDERS if start <= created(o) < end and o["owner"] in (1, 2)]
    assert sum(counts(widgets["by_status"], "status").values()) == len(by_created)
    # surveys are created 2026-01-10 by user 1: none in range
    assert widgets["nps"]["result"]["rows"][0]["responses"] == 0


def test_a_viewer_chosen_date_field_applies_where_it_exists(engine):
    tables = seed(engine)
    filters = {"date_field": "due_on", "date_from": "2026-03-01", "date_to": "2026-03-31"}
    widgets = {w["report"]: w for w in dashboard(engine, tables, filters=filters)["widgets"]}
    assert widgets["by_status"]["date_field"] == "due_on" and widgets["nps"]["date_field"] == "created_at"
    due = [o for o in ORDERS if o["due_on"] and o["due_on"].month == 3 and o["due_on"].year == 2026]
    assert sum(counts(widgets["by_status"], "status").values()) == len(due)


@pytest.mark.parametrize("filters", [{"date_from": "31/01/2026"}, {"owner": "alice"}, {"team": "x"}])
def test_bad_filters_fail_the_dashboard(engine, filters):
    tables = seed(engine)
    with pytest.raises(ValidationFailed):
        dashboard(engine, tables, filters=filters)


def test_unknown_dashboard(engine):
    tables = seed(engine)
    with engine.connect() as conn, pytest.raises(NotFound):
        run_dashboard(conn, APP, "nope", tables, tz=SHANGHAI, now=NOW, where_for=lambda e: None)
