"""Hostile input on pages, public surveys and the command line, found by sweeping from outside:
lists of entities with a multiselect column, ids and dates past the calendar on page forms and
filters, non-ASCII CSRF headers, deeply nested survey bodies, and CLI arguments that name files,
folders, ports or databases that cannot be used. A 4xx page or exit code 1/2, never a 500 or a
traceback."""
from __future__ import annotations

import copy
import re

import pytest
import sqlalchemy as sa

from runtime import system_tables as st
from tests.runtime.flow_support import complaints_doc
from tests.web.pages_support import CRM, sign_in
from web.cli import main

HUGE = "99999999999999999999"


@pytest.fixture
def admin(flask_app, api, make_app):
    make_app(copy.deepcopy(CRM))
    return sign_in(flask_app)


def test_lists_and_records_with_a_multiselect_column_render(admin, api):
    st_, cust = api.post("/apps/crm/customer", {"name": "北辰"})
    st_, ticket = api.post("/apps/crm/ticket", {"subject": "屏幕闪烁", "customer": cust["id"], "tags": ["a", "b"]})
    assert st_ == 201, ticket
    for path in ("/apps/crm/ticket", "/apps/crm/ticket?sort=-tags", f"/apps/crm/ticket/{ticket['id']}",
                 f"/apps/crm/customer/{cust['id']}"):
        resp = admin.get(path)
        assert resp.status_code == 200, path
        assert "屏幕闪烁" in resp.get_data(as_text=True)


def test_page_ids_and_audit_filters_past_the_range(admin, api):
    assert admin.post(f"/apps/crm/customer/views/{HUGE}/delete").status_code == 302
    for path in (f"/admin/audit?record={HUGE}", f"/admin/audit?before={HUGE}", "/admin/audit?since=0001-01-01",
                 f"/apps/crm/customer/{HUGE}", f"/builder/crm/revisions/{HUGE}"):
        resp = admin.get(path)
        assert resp.status_code in (200, 404), (path, resp.status_code)


def test_nul_in_a_page_query_or_form_is_a_400_page(admin):
    assert admin.get("/apps/crm/customer?q=%00").status_code == 400
    assert admin.post("/apps/crm/customer/new", {"name": "a\x00b"}).status_code == 400
    assert admin.get("/apps/crm/customer?q=ok").status_code == 200


def test_a_csrf_header_with_non_ascii_text_is_refused(admin):
    resp = admin.client.post("/api/v1/apps/crm/customer", json={"name": "x"},
                             headers={"X-CSRF-Token": "中文".encode().decode("latin-1")})
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "forbidden"


def test_a_token_expiry_past_the_calendar_is_refused(flask_app, admin):
    for when in ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59-14:00"):
        st_, out = admin.json("POST", "/api/v1/tokens", {"name": "far", "expires_at": when})
        assert st_ == 422 and "expires_at" in out["error"]["details"], out
    st_, out = admin.json("POST", "/api/v1/tokens", {"name": "late", "expires_at": "9999-12-30T00:00:00Z"})
    assert st_ == 201
    assert admin.get("/me/tokens").status_code == 200


def test_a_survey_body_nested_too_deep_answers_422(api, make_app, login_as, flask_app):
    assert api.post("/teams", {"key": "service", "label": "客服"})[0] == 201
    make_app(complaints_doc())
    li = login_as("li", teams=["service"], app_roles={"complaints": ["agent"]})
    st_, cust = li.post("/apps/complaints/customer", {"name": "西部电子", "email": "qa@xibu.example.cn"})
    st_, t = li.post("/apps/complaints/ticket", {"subject": "屏幕闪烁", "customer": cust["id"]})
    li.post(f"/apps/complaints/ticket/{t['id']}/transitions/accept", {})
    li.post(f"/apps/complaints/ticket/{t['id']}/transitions/resolve", {"values": {"resolution": "更换屏幕"}})
    with flask_app.extensions["jimu"].engine.connect() as conn:
        token = conn.execute(sa.select(st.public_tokens.c.token).where(st.public_tokens.c.kind == "survey")).scalar()
    client = flask_app.test_client()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"/s/{token}").text).group(1)
    for raw, status in ((b"[" * 10_000 + b"]" * 10_000, 422), (b'{"csat": "\\ud800"}', 400)):
        resp = client.post(f"/s/{token}", data=raw, content_type="application/json",
                           headers={"X-CSRF-Token": csrf, "Accept": "application/json"})
        assert resp.status_code == status, resp.text
    ok = client.post(f"/s/{token}", json={"csat": 5}, headers={"X-CSRF-Token": csrf, "Accept": "application/json"})
    assert ok.status_code == 201                              # the refused tries did not spend the link


# ---------------------------------------------------------------- jimu …
def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:           # argparse: usage errors exit 2
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_cli_databases_that_do_not_open(tmp_path, capsys):
    (tmp_path / "pw").write_text("Passw0rd-x\n")
    for url in ("garbage://x", f"sqlite:///{tmp_path}/missing/dir/x.db"):
        code, _, err = run(capsys, "init", "--db", url, "--admin-password-file", str(tmp_path / "pw"))
        assert code == 1 and "cannot use the database" in err, err


def test_cli_files_and_folders_that_cannot_be_used(db_url, tmp_path, capsys):
    assert run(capsys, "pack", "import", "lead_routing", "--db", db_url)[0] == 0
    (tmp_path / "taken.csv").write_text("x")
    (tmp_path / "folder").mkdir()
    code, _, err = run(capsys, "pack", "export", "lead_routing", "-o", str(tmp_path / "taken.csv"), "--db", db_url)
    assert code == 1 and "taken.csv" in err
    code, _, err = run(capsys, "import", "lead_routing", "lead", str(tmp_path / "folder"), "--dry-run", "--db", db_url)
    assert code == 1 and "folder" in err


def test_cli_ports_and_team_keys_are_checked(services, db_url, tmp_path, capsys):
    code, _, err = run(capsys, "serve", "--port", "99999999", "--db", db_url)
    assert code == 2 and "port" in err
    (tmp_path / "pw").write_text("Passw0rd-x\n")
    code, _, err = run(capsys, "user", "add", "ann", "--role", "user", "--team", "Bad Team!",
                       "--password-file", str(tmp_path / "pw"), "--db", db_url)
    assert code == 1 and "--team" in err
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(st.teams)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(st.users)).scalar() == 0
