"""REST for packs: /packs/plan, /packs/import (multipart, raw zip, built-in name), /apps/{app}/export,
who may use them, and the command line (``jimu pack …``) on the same databases."""
from __future__ import annotations

import io

import pytest

from templates_library.loader import list_builtin_packs, load_pack
from tests.templates_library.pack_helpers import helpdesk_app, pack_files, write_folder, zip_bytes
from web.cli import main


def post_zip(api, path, data, **query):
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    resp = api.client.post(f"/api/v1{path}{'?' + qs if qs else ''}", data=data,
                           headers={**api._headers(), "Content-Type": "application/zip"})
    return resp.status_code, resp.get_json()


def test_plan_a_builtin_pack_writes_nothing(api):
    st, plan = api.post("/packs/plan", {"builtin": "lead_routing"})
    assert st == 200, plan
    assert plan["action"] == "install" and plan["errors"] == [] and plan["app"] == "lead_routing"
    assert plan["pack"]["version"] == "1.0.0" and plan["sample_data"] == {"lead": 800}
    assert api.get("/apps")[1]["items"] == []


def test_import_a_builtin_pack_and_export_it_back(api):
    st, out = api.post("/packs/import", {"builtin": "sales_pipeline"})
    assert st == 201, out
    assert (out["app"], out["action"], out["revision"], out["sample_data"]) == ("sales_pipeline", "install", 1, {})
    app = next(a for a in api.get("/apps")[1]["items"] if a["app"] == "sales_pipeline")
    assert app["pack"] == {"name": "sales_pipeline", "version": "1.0.0"} and app["published_revision"] == 1

    builtin = load_pack(next(p for p in list_builtin_packs() if p.name == "sales_pipeline"))
    st, as_json = api.get("/apps/sales_pipeline/export?format=json")
    assert st == 200
    assert (as_json["pack"], as_json["version"], as_json["format_version"]) == ("sales_pipeline", "1.0.0", 1)
    assert as_json["app"] == builtin.app and as_json["sample_data"] == {}

    resp = api.client.get("/api/v1/apps/sales_pipeline/export", headers=api._headers())
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    assert 'filename="sales_pipeline-1.0.0.zip"' in resp.headers["Content-Disposition"]
    assert load_pack(resp.data).app == builtin.app


def test_import_uploads_with_sample_data(api):
    files = pack_files()
    resp = api.client.post("/api/v1/packs/import", headers=api._headers(), content_type="multipart/form-data",
                           data={"file": (io.BytesIO(zip_bytes(files)), "helpdesk.zip"), "with_sample_data": "true"})
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["sample_data"] == {"customer": 2, "request": 3}
    assert api.get("/apps/helpdesk/request")[1]["total"] == 3

    st, data = api.get("/apps/helpdesk/export?format=json&with_data=1")
    assert [r["name"] for r in data["sample_data"]["customer"]] == ["华东精密机械", "北辰零售"]
    assert [r["customer"] for r in data["sample_data"]["request"]] == ["1", "2", "1"]


def test_import_a_raw_zip_without_sample_data(api):
    st, out = post_zip(api, "/packs/import", zip_bytes(pack_files(), top=None))
    assert st == 201 and out["sample_data"] == {}
    assert api.get("/apps/helpdesk/request")[1]["total"] == 0


@pytest.mark.parametrize("call, status, code", [
    # a body that is neither a zip nor the expected JSON
    (lambda api: api.post("/packs/import", {"builtin": "../../etc"}), 422, "validation_failed"),
    (lambda api: api.post("/packs/import", {"builtin": "lead_routing", "force": True}), 422, "validation_failed"),
    (lambda api: api.post("/packs/plan", ["lead_routing"]), 422, "validation_failed"),
    (lambda api: api.call("POST", "/packs/plan", raw=b"{not json"), 400, "bad_request"),
    (lambda api: post_zip(api, "/packs/import", b""), 400, "bad_request"),
    (lambda api: _multipart(api, {"other": (io.BytesIO(b"x"), "x.zip")}), 422, "validation_failed"),
    # an upload larger than the server takes at all
    (lambda api: post_zip(api, "/packs/import", b"\0" * (21 * 1024 * 1024)), 413, "payload_too_large"),
    (lambda api: api.get("/apps/nope/export"), 404, "not_found"),
    (lambda api: api.get("/apps/nope/export?format=xml"), 422, "validation_failed"),
])
def test_bad_requests_answer_the_error_shape(api, call, status, code):
    st, body = call(api)
    assert st == status, body
    assert body["error"]["code"] == code and body["error"]["message"]
    assert api.get("/apps")[1]["items"] == []


def _multipart(api, data):
    resp = api.client.post("/api/v1/packs/import", headers=api._headers(), content_type="multipart/form-data",
                           data=data)
    return resp.status_code, resp.get_json()


def test_only_admins_and_builders_use_packs(api, flask_app, login_as):
    assert api.post("/packs/import", {"builtin": "lead_routing"})[0] == 201
    user = login_as("ann", "user")
    for st, body in (user.post("/packs/plan", {"builtin": "sales_pipeline"}),
                     user.post("/packs/import", {"builtin": "sales_pipeline"}),
                     user.get("/apps/lead_routing/export")):
        assert st == 403 and body["error"]["code"] == "forbidden"
    builder = login_as("bob", "builder")
    assert builder.post("/packs/plan", {"builtin": "sales_pipeline"})[0] == 200
    assert builder.get("/apps/lead_routing/export?format=json")[0] == 200
    # records leave an export without the app's permissions: with data, admins only
    assert builder.get("/apps/lead_routing/export?format=json&with_data=1")[0] == 403
    assert builder.post("/packs/import", {"builtin": "sales_pipeline"})[0] == 201
    # a read-only token plans nothing and imports nothing
    from runtime import users
    with flask_app.extensions["jimu"].engine.begin() as conn:
        token = users.create_token(conn, users.find_user(conn, "admin").id, "ro", "read")["token"]
    reader = type(api)(api.client, token)
    assert reader.post("/packs/plan", {"builtin": "customer_360"})[0] == 403
    assert reader.post("/packs/import", {"builtin": "customer_360"})[0] == 403
    assert reader.get("/apps/lead_routing/export?format=json")[0] == 200
    # a token limited to other apps neither plans nor imports this one
    with flask_app.extensions["jimu"].engine.begin() as conn:
        token = users.create_token(conn, users.find_user(conn, "admin").id, "crm", "write", apps=["crm"])["token"]
    narrow = type(api)(api.client, token)
    assert narrow.post("/packs/plan", {"builtin": "customer_360"})[0] == 403
    assert narrow.post("/packs/import", {"builtin": "customer_360"})[0] == 403
    assert narrow.get("/apps/lead_routing/export?format=json")[0] == 403
    assert {a["app"] for a in api.get("/apps")[1]["items"]} == {"lead_routing", "sales_pipeline"}


# ---------------------------------------------------------------------- jimu pack …
def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_list_plan_import_export(db_url, tmp_path, capsys):
    code, out, _ = run(capsys, "pack", "list", "--db", db_url)
    assert code == 0
    assert "complaint_handling" in out and "1.0.0" in out and "(none / 无)" in out

    code, out, _ = run(capsys, "pack", "plan", "lead_routing", "--db", db_url)
    assert code == 0 and "lead_routing 1.0.0 → app lead_routing: install" in out
    assert "create table for lead" in out

    folder = write_folder(tmp_path / "helpdesk", pack_files())
    code, out, _ = run(capsys, "pack", "import", str(folder), "--with-sample-data", "--db", db_url)
    assert code == 0, out
    assert "Installed helpdesk 1.0.0 as app helpdesk (revision 1)" in out and "customer 2, request 3" in out
    assert "vip_desk, front_desk" in out

    code, out, _ = run(capsys, "pack", "list", "--db", db_url)
    assert "pack helpdesk 1.0.0" in out

    target = tmp_path / "out" / "helpdesk.zip"
    code, out, _ = run(capsys, "pack", "export", "helpdesk", "-o", str(target), "--db", db_url)
    assert code == 0 and target.is_file()
    assert load_pack(target).app == helpdesk_app()

    newer = write_folder(tmp_path / "helpdesk-1.1.0", pack_files("1.1.0"))
    code, out, _ = run(capsys, "pack", "import", str(newer), "--db", db_url)
    assert code == 0 and "Upgraded helpdesk 1.1.0" in out


def test_cli_refuses_bad_packs_with_exit_code_1(db_url, tmp_path, capsys):
    code, _, err = run(capsys, "pack", "plan", str(tmp_path / "missing"), "--db", db_url)
    assert code == 1 and "no pack at" in err
    files = pack_files(sample={"customer": "name,level\nA,gold\n"})
    folder = write_folder(tmp_path / "bad", files)
    code, out, _ = run(capsys, "pack", "plan", str(folder), "--db", db_url)
    assert code == 1 and "ERROR data/customer.csv row 1, column level" in out
    code, _, err = run(capsys, "pack", "import", str(folder), "--db", db_url)
    assert code == 1 and "Invalid pack" in err and "data/customer.csv row 1, column level" in err
    code, out, _ = run(capsys, "pack", "list", "--db", db_url)
    assert "(none / 无)" in out
