"""Uninstall over REST (``POST /api/v1/apps/{app}/uninstall``, with the export downloaded first from
``GET /apps/{app}/export?with_data=1``) and from the command line (``jimu pack uninstall``): the
plan changes nothing, the confirmed uninstall keeps the export and removes the app, every refusal
answers the error shape and changes nothing, and no path is ever taken from a request."""
from __future__ import annotations

import hashlib
import io

import pytest

from templates_library.loader import load_pack
from tests.templates_library.pack_helpers import pack_files, write_folder, zip_bytes
from tests.templates_library.uninstall_support import snapshot
from web.app import create_app
from web.cli import main


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "instance-data"


@pytest.fixture
def flask_app(db_url, data_dir):
    """The app of ``tests/conftest.py`` with its data folder in the test's temporary folder."""
    app = create_app({"JIMU_DATABASE_URL": db_url, "SECRET_KEY": "test-secret", "TESTING": True,
                      "JIMU_DATA_DIR": str(data_dir)})
    yield app
    app.extensions["jimu"].engine.dispose()


@pytest.fixture
def helpdesk(api):
    resp = api.client.post("/api/v1/packs/import?with_sample_data=1", data=zip_bytes(pack_files()),
                           headers={**api._headers(), "Content-Type": "application/zip"})
    assert resp.status_code == 201, resp.get_json()
    return api


def download(api, app_key="helpdesk"):
    resp = api.client.get(f"/api/v1/apps/{app_key}/export?with_data=1", headers=api._headers())
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    return resp.data


def state(flask_app, data_dir):
    files = sorted(p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*")) if data_dir.exists() else []
    return snapshot(flask_app.extensions["jimu"].engine), files


def test_the_plan_then_the_uninstall_with_the_downloaded_export(helpdesk, flask_app, data_dir):
    api = helpdesk
    before = state(flask_app, data_dir)
    for body in ({"confirm": False}, None):
        st, plan = api.post("/apps/helpdesk/uninstall", body)
        assert st == 200, plan
        assert plan["records"] == {"customer": 2, "request": 3} and plan["errors"] == []
        assert {t["entity"] for t in plan["tables"]} == {"customer", "request"} and plan["kept"]["audit_entries"]
    assert state(flask_app, data_dir) == before

    zipped = download(api)
    pack = load_pack(zipped)
    assert [r["subject"] for r in pack.sample_data["request"]] == ["设备无法启动", "发票抬头错误", "再次报修"]
    sha = hashlib.sha256(zipped).hexdigest()
    st, out = api.post("/apps/helpdesk/uninstall", {"confirm": True, "export_sha256": sha.upper()})
    assert st == 200, out
    kept = data_dir / "exports" / out["export"]["path"].rsplit("/", 1)[-1]
    assert out["export"]["path"] == str(kept) and kept.read_bytes() == zipped
    assert out["export"]["records"] == {"customer": 2, "request": 3} and out["removed"]["tables"] == 2
    assert api.get("/apps/helpdesk/request")[0] == 404
    assert "helpdesk" not in {a["app"] for a in api.get("/apps")[1]["items"]}
    st, log = api.get("/audit?app=helpdesk&action=metadata")
    assert log["items"][0]["summary"].startswith("uninstalled app helpdesk") and log["items"][0]["user"] == "admin"
    assert log["items"][0]["details"]["export"]["path"] == str(kept)

    # the kept export installs the app again with its records
    resp = api.client.post("/api/v1/packs/import", headers=api._headers(), content_type="multipart/form-data",
                           data={"file": (io.BytesIO(kept.read_bytes()), "helpdesk.zip"), "with_sample_data": "1"})
    assert resp.status_code == 201, resp.get_json()
    items = api.get("/apps/helpdesk/request?sort=id")[1]["items"]
    assert [(r["subject"], r["amount"]) for r in items] == [("设备无法启动", "120.50"), ("发票抬头错误", None),
                                                             ("再次报修", "0.00")]


ZEROS = "0" * 64


@pytest.mark.parametrize("who, call, status, code", [
    # only platform admins, with a token that may write and is valid for the app
    ("builder", lambda a: a.post("/apps/helpdesk/uninstall", {"confirm": False}), 403, "forbidden"),
    ("user", lambda a: a.post("/apps/helpdesk/uninstall", {"confirm": True, "export_sha256": ZEROS}), 403,
     "forbidden"),
    ("read_token", lambda a: a.post("/apps/helpdesk/uninstall", {"confirm": False}), 403, "forbidden"),
    ("other_app_token", lambda a: a.post("/apps/helpdesk/uninstall", {"confirm": False}), 403, "forbidden"),
    # no such app; a hostile path where the app key goes
    ("admin", lambda a: a.post("/apps/nope/uninstall", {"confirm": False}), 404, "not_found"),
    ("admin", lambda a: a.post("/apps/..%2F..%2Fetc/uninstall", {"confirm": True, "export_sha256": ZEROS}), 404,
     "not_found"),
    ("admin", lambda a: a.post("/apps/Help.desk/uninstall", {"confirm": True, "export_sha256": ZEROS}), 404,
     "not_found"),
    # no path is taken from the body, nor anything else it does not know
    ("admin", lambda a: a.post("/apps/helpdesk/uninstall", {"confirm": True, "export_sha256": ZEROS,
                                                            "path": "../../etc"}), 422, "validation_failed"),
    ("admin", lambda a: a.post("/apps/helpdesk/uninstall", {"confirm": "yes"}), 422, "validation_failed"),
    ("admin", lambda a: a.post("/apps/helpdesk/uninstall", ["confirm"]), 422, "validation_failed"),
    ("admin", lambda a: a.call("POST", "/apps/helpdesk/uninstall", raw=b"{not json"), 400, "bad_request"),
    # not confirmed with the export: its SHA-256 is missing, malformed, or not the export's
    ("admin", lambda a: a.post("/apps/helpdesk/uninstall", {"confirm": True}), 422, "validation_failed"),
    ("admin", lambda a: a.post("/apps/helpdesk/uninstall", {"confirm": True, "export_sha256": "../x"}), 422,
     "validation_failed"),
    ("admin", lambda a: a.post("/apps/helpdesk/uninstall", {"confirm": True, "export_sha256": ZEROS}), 409,
     "conflict"),
], ids=["builder", "user", "read-token", "other-app-token", "unknown-app", "dot-dot-key", "bad-key", "path-in-body",
        "confirm-not-bool", "body-not-object", "bad-json", "no-sha", "bad-sha", "wrong-sha"])
def test_refusals_answer_the_error_shape_and_change_nothing(helpdesk, flask_app, data_dir, login_as,
                                                            who, call, status, code):
    from runtime import users
    engine = flask_app.extensions["jimu"].engine
    if who in ("builder", "user"):
        client = login_as(who, who)
    elif who == "admin":
        client = helpdesk
    else:
        with engine.begin() as conn:
            admin = users.find_user(conn, "admin").id
            token = (users.create_token(conn, admin, "ro", "read") if who == "read_token"
                     else users.create_token(conn, admin, "crm", "write", apps=["crm"]))["token"]
        client = type(helpdesk)(helpdesk.client, token)
    before = state(flask_app, data_dir)
    st, body = call(client)
    assert st == status, body
    assert body["error"]["code"] == code and body["error"]["message"]
    assert state(flask_app, data_dir) == before
    assert helpdesk.get("/apps/helpdesk/request")[1]["total"] == 3


def test_data_changed_since_the_download_refuses(helpdesk, flask_app, data_dir):
    api = helpdesk
    sha = hashlib.sha256(download(api)).hexdigest()
    assert api.post("/apps/helpdesk/request", {"subject": "新的请求"})[0] == 201
    before = state(flask_app, data_dir)
    st, body = api.post("/apps/helpdesk/uninstall", {"confirm": True, "export_sha256": sha})
    assert st == 409 and body["error"]["details"]["export_sha256"]
    assert state(flask_app, data_dir) == before
    # downloaded again, it goes
    sha = hashlib.sha256(download(api)).hexdigest()
    assert api.post("/apps/helpdesk/uninstall", {"confirm": True, "export_sha256": sha})[0] == 200


# ---------------------------------------------------------------------- jimu pack uninstall
def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_plans_without_yes_and_uninstalls_with_it(db_url, tmp_path, capsys):
    folder = write_folder(tmp_path / "helpdesk", pack_files())
    assert run(capsys, "pack", "import", str(folder), "--with-sample-data", "--db", db_url)[0] == 0
    target = tmp_path / "kept" / "helpdesk.zip"

    code, out, _ = run(capsys, "pack", "uninstall", "helpdesk", "--export", str(target), "--db", db_url)
    assert code == 0, out
    assert "records / 记录: customer 2, request 3" in out and "Nothing was changed" in out
    assert not target.exists()
    assert "pack helpdesk 1.0.0" in run(capsys, "pack", "list", "--db", db_url)[1]

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "a.csv").write_text("x")
    code, out, err = run(capsys, "pack", "uninstall", "helpdesk", "--export", str(tmp_path / "taken"), "--yes",
                         "--db", db_url)
    assert code == 1 and "exists and is not empty" in err and "Traceback" not in err
    code, _, err = run(capsys, "pack", "uninstall", "nope", "--export", str(target), "--yes", "--db", db_url)
    assert code == 1 and "No app" in err
    assert "pack helpdesk 1.0.0" in run(capsys, "pack", "list", "--db", db_url)[1]

    code, out, _ = run(capsys, "pack", "uninstall", "helpdesk", "--export", str(target), "--yes", "--db", db_url)
    assert code == 0, out
    assert f"Exported app helpdesk to {target}" in out and "customer 2, request 3" in out
    assert f"jimu pack import {target} --with-sample-data" in out
    assert "(none / 无)" in run(capsys, "pack", "list", "--db", db_url)[1]

    code, out, _ = run(capsys, "pack", "import", str(target), "--with-sample-data", "--db", db_url)
    assert code == 0 and "customer 2, request 3" in out
