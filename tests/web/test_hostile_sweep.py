"""Hostile input found by sweeping the public API from outside: text that is not text (NUL, lone
surrogates), ids past what a database column holds, dates off the calendar. Each answers a 4xx in
the error shape, never a 500, and changes nothing."""
from __future__ import annotations

import copy

import pytest

from tests.web.test_records_api import APP

HUGE = "99999999999999999999"          # past a 64-bit integer: no driver binds it


@pytest.fixture
def crm(api, make_app):
    make_app(copy.deepcopy(APP))
    return api


def _customer(api) -> dict:
    st, rec = api.post("/apps/crm/customer", {"name": "华东精密机械"})
    assert st == 201, rec
    return rec


def _error(st, body, status, code=None):
    assert st == status, body
    assert isinstance(body["error"]["message"], str)
    if code:
        assert body["error"]["code"] == code


# ---------------------------------------------------------------- text that is not text
@pytest.mark.parametrize("raw", [
    b'{"name": "\\ud800"}',                      # half of a UTF-16 pair: no encoder takes it
    b'{"name": "ok", "notes": "a\\udfffb"}',
    b'{"\\ud800": "x"}',                         # in a key
    b'{"name": "a\\u0000b"}',                    # NUL: PostgreSQL text cannot hold it
])
def test_bodies_holding_non_text_are_refused_whole(crm, raw):
    rec = _customer(crm)
    for method, path in (("POST", "/apps/crm/customer"), ("PATCH", f"/apps/crm/customer/{rec['id']}")):
        st, body = crm.call(method, path, raw=raw)
        _error(st, body, 400, "bad_request")
    assert crm.get("/apps/crm/customer")[1]["total"] == 1
    assert crm.get(f"/apps/crm/customer/{rec['id']}")[1]["_version"] == 1


def test_non_text_in_people_and_filters_is_refused(crm):
    st, body = crm.call("POST", "/teams", raw=b'{"key": "t1", "members": ["a\\u0000"]}')
    _error(st, body, 400, "bad_request")
    for path in ("/teams/%00", "/apps/%00/draft", "/apps/crm/customer?q=%00", "/apps/crm/customer?sort=name%00"):
        st, body = crm.get(path)
        _error(st, body, 400, "bad_request")
    # a NUL written as an escape inside an expression's text literal
    st, body = crm.get("/apps/crm/customer?filter=" + "name == '\\x00'")
    _error(st, body, 422, "validation_failed")


def test_a_surrogate_in_an_import_mapping_is_refused(crm):
    resp = crm.client.post("/api/v1/apps/crm/customer/import", headers=crm._headers(),
                           content_type="multipart/form-data",
                           data={"file": (__import__("io").BytesIO("名称\n甲\n".encode()), "a.csv"),
                                 "mapping": '{"\\ud800": "name"}'})
    assert resp.status_code == 422 and "mapping" in resp.get_json()["error"]["details"]


# ---------------------------------------------------------------- ids past the column's range
def test_ids_past_the_integer_range_name_nothing(crm):
    rec = _customer(crm)
    share, decide, name = {"user": 1, "access": "read"}, {"decision": "approve"}, {"name": "x"}
    calls = [
        ("GET", f"/apps/crm/customer/{HUGE}", None), ("PATCH", f"/apps/crm/customer/{HUGE}", name),
        ("DELETE", f"/apps/crm/customer/{HUGE}", None), ("GET", f"/apps/crm/customer/{HUGE}/timeline", None),
        ("GET", f"/apps/crm/customer/{HUGE}/shares", None), ("POST", f"/apps/crm/customer/{HUGE}/shares", share),
        ("DELETE", f"/apps/crm/customer/{rec['id']}/shares/{HUGE}", None),
        ("POST", f"/apps/crm/customer/{HUGE}/transitions/go", {}),
        ("GET", f"/users/{HUGE}", None), ("PATCH", f"/users/{HUGE}", {"role": "user"}), ("DELETE", f"/tokens/{HUGE}", None),
        ("POST", f"/tasks/{HUGE}/complete", {}), ("POST", f"/approvals/{HUGE}/decide", decide),
        ("GET", f"/apps/crm/revisions/{HUGE}", None), ("GET", f"/apps/crm/revisions/{HUGE}/diff", None),
        ("GET", f"/apps/crm/revisions/1/diff?against={HUGE}", None),
    ]
    for method, path, body in calls:
        st, out = crm.call(method, path, body)
        assert st == 404, (method, path, st, out)
        assert out["error"]["code"] == "not_found"


def test_id_like_searches_and_filters_past_the_range_find_nothing(crm):
    _customer(crm)
    st, out = crm.get(f"/apps/crm/customer?q={HUGE}")
    assert st == 200 and out["total"] == 0
    for query in (f"record={HUGE}", f"before={HUGE}", f"user={HUGE}", "record=-1"):
        st, out = crm.get(f"/audit?{query}")
        assert st == 200, (query, out)
    assert crm.get(f"/audit?before={HUGE}")[1]["items"]       # past every id: everything is before it
    st, out = crm.get(f"/outbox?record={HUGE}")
    assert st == 200 and out["items"] == []
    st, out = crm.post("/notifications/read", {"ids": [int(HUGE), -1]})
    assert st == 200
    st, out = crm.post("/notifications/read", {"ids": list(range(1, 70_001))})   # past any bind limit
    _error(st, out, 422, "validation_failed")


def test_report_filters_past_the_range_are_refused(crm, api):
    doc = copy.deepcopy(APP)
    doc["reports"] = [{"key": "by_industry", "entity": "customer", "group_by": ["industry"], "measures": [{"agg": "count"}]}]
    assert api.put("/apps/crm/draft", doc)[0] == 200 and api.post("/apps/crm/publish", {})[0] == 200
    for query, name in ((f"owner={HUGE}", "owner"), ("date_from=0001-01-01", "date_from"),
                        ("date_to=9999-12-31", "date_to"), ("date_from=0001-01-01&format=svg", "date_from")):
        st, out = api.get(f"/apps/crm/reports/by_industry?{query}")
        _error(st, out, 422, "validation_failed")
        assert name in out["error"]["details"]
    assert api.get("/apps/crm/reports/by_industry?date_from=0001-01-02&date_to=9999-12-30")[0] == 200


# ---------------------------------------------------------------- dates off the calendar
@pytest.mark.parametrize("value", [
    "9999-12-31T23:59:59Z",                      # fine in UTC, past year 9999 at +08:00
    "0001-01-01T00:00:00+14:00",                 # before year 1 in UTC
    "0001-01-01T00:00:00",                       # naive: the app's +08:00 puts it before year 1
])
def test_datetimes_off_the_calendar_are_refused(crm, value):
    rec = _customer(crm)
    st, out = crm.post("/apps/crm/customer", {"name": "x", "last_contact": value})
    _error(st, out, 422, "validation_failed")
    assert "last_contact" in out["error"]["details"]
    st, out = crm.patch(f"/apps/crm/customer/{rec['id']}", {"last_contact": value})
    _error(st, out, 422, "validation_failed")
    assert crm.get(f"/apps/crm/customer/{rec['id']}")[1]["_version"] == 1


def test_the_calendars_edges_still_fit(crm):
    st, out = crm.post("/apps/crm/customer", {"name": "x", "last_contact": "9999-12-30T12:00:00+08:00",
                                              "since": "9999-12-31"})
    assert st == 201 and out["last_contact"] == "9999-12-30T12:00:00+08:00"
    assert crm.get(f"/apps/crm/customer/{out['id']}")[0] == 200


def test_filters_whose_constants_fall_off_the_calendar_are_refused(crm):
    for expr in ("last_contact > TODAY() - DAYS(999999999)", "since > TODAY() + DAYS(999999999)"):
        st, out = crm.get("/apps/crm/customer?filter=" + expr)
        _error(st, out, 422, "validation_failed")
        st, out = crm.get("/apps/crm/customer?format=csv&filter=" + expr)
        _error(st, out, 422, "validation_failed")


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_audit_since_off_the_calendar(crm, since):
    _customer(crm)
    st, out = crm.get("/audit?since=" + since.replace("+", "%2B"))
    assert st == 200
    assert bool(out["items"]) == since.startswith("0001")   # everything is after year 1, nothing after 9999


def test_simulating_at_a_time_off_the_calendar_is_refused(crm):
    for at in ("9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "garbage"):
        st, out = crm.post("/apps/crm/simulate", {"entity": "customer", "record": {"name": "x"}, "at": at})
        _error(st, out, 422, "validation_failed")
        assert "at" in out["error"]["details"]


def test_a_date_automation_past_the_calendar_never_fires(api, make_app):
    doc = {"app": "renew", "label": "续约", "entities": [{"key": "contract", "label": "合同", "fields": [
        {"key": "name", "type": "text", "label": "名称"}, {"key": "ends", "type": "date", "label": "到期"}]}],
        "rules": [{"key": "before_end", "kind": "automation", "entity": "contract", "on": ["schedule"],
                   "schedule": {"field": "ends", "offset": {"days": 30}}, "actions": [{"add_tag": "renew"}]},
                  {"key": "after_start", "kind": "automation", "entity": "contract", "on": ["schedule"],
                   "schedule": {"field": "ends", "offset": {"days": -30}}, "actions": [{"add_tag": "early"}]}]}
    make_app(doc)
    for ends in ("9999-12-31", "0001-01-01"):
        st, out = api.post("/apps/renew/contract", {"name": "x", "ends": ends})
        assert st == 201, out
        st, out = api.patch(f"/apps/renew/contract/{out['id']}", {"ends": ends})
        assert st == 200, out
