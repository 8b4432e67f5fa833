"""Malformed and hostile packs sent to ``POST /api/v1/packs/import``: each is refused with a clear,
located message in the one error shape, and nothing is written (tables, apps, teams, audit).
"""
from __future__ import annotations

import copy
import io
import zipfile

import pytest
import sqlalchemy as sa

from builder import store
from runtime import system_tables as st
from templates_library.safe_yaml import dump_yaml

from .pack_helpers import CUSTOMERS, REQUESTS, helpdesk_app, pack_files, zip_bytes

MB = 1024 * 1024


def manifest(**changes) -> str:
    doc = {"pack": "helpdesk", "format_version": 1, "version": "1.0.0", "title": "服务台",
           "app": helpdesk_app(), "sample_data": {"customer": "data/customer.csv", "request": "data/request.csv"}}
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return dump_yaml(doc)


def with_files(**files):
    """The test pack with some files replaced (``pack_yaml`` for pack.yaml)."""
    out = pack_files()
    for key, value in files.items():
        out["pack.yaml" if key == "pack_yaml" else ".".join(key.replace("__", "/").rsplit("_", 1))] = value
    return zip_bytes(out)


def app_with(change) -> str:
    app = copy.deepcopy(helpdesk_app())
    change(app)
    return manifest(app=app)


def raw_zip(entries: dict[str, bytes | str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _bad_field_key(app):
    app["entities"][0]["fields"][1]["key"] = "select"


def _bad_expression(app):
    app["rules"][0]["expression"] = "'high' if customer.levle == 'vip' else 'low'"


def _refusing_rule(app):
    app["rules"].append({"key": "no_free", "kind": "validate", "entity": "request",
                         "condition": "ISBLANK(amount) or amount > 0", "message": "金额必须大于 0 / amount must be > 0",
                         "field": "amount"})


PYTHON_TAG = manifest().replace("title: 服务台", 'title: !!python/object/apply:os.system ["touch /tmp/jimu-pwned"]')
ALIASES = manifest().replace("title: 服务台", "title: &t 服务台\ndescription: *t")
DUPLICATE = manifest() + "version: 9.9.9\n"

CASES = [
    # (id, zip bytes, status, text the message or a detail carries, where a detail points)
    ("not-a-mapping", lambda: with_files(pack_yaml="- just\n- a list\n"), 422, "must be a mapping", "pack.yaml"),
    ("missing-version", lambda: with_files(pack_yaml=manifest(version=None)), 422,
     "missing required key 'version'", "pack.yaml"),
    ("bad-version", lambda: with_files(pack_yaml=manifest(version="1.0")), 422, "MAJOR.MINOR.PATCH",
     "pack.yaml: version"),
    ("unknown-top-level-key", lambda: with_files(pack_yaml=manifest() + "install_script: run.sh\n"), 422,
     "unknown key", "pack.yaml"),
    ("python-object-tag", lambda: with_files(pack_yaml=PYTHON_TAG), 422, "python", "pack.yaml line"),
    ("yaml-alias", lambda: with_files(pack_yaml=ALIASES), 422, "aliases", "pack.yaml line"),
    ("duplicate-key", lambda: with_files(pack_yaml=DUPLICATE), 422, "duplicate key 'version'", "pack.yaml line"),
    ("unknown-format-version", lambda: with_files(pack_yaml=manifest(format_version=2)), 422,
     "unsupported format_version 2", "pack.yaml: format_version"),
    ("zip-slip-entry", lambda: raw_zip({"pack.yaml": manifest(sample_data=None), "../evil.yaml": "x: 1"}), 422,
     "'..' not allowed", "../evil.yaml"),
    ("absolute-path-entry", lambda: raw_zip({"pack.yaml": manifest(sample_data=None), "/tmp/evil.yaml": "x"}),
     422, "absolute path", "/tmp/evil.yaml"),
    ("code-file", lambda: with_files(data__run_py="import os\n"), 422, "file type not allowed", "pack/data/run.py"),
    ("csv-over-20-mb", lambda: with_files(data__customer_csv="name\n" + "某公司\n" * (21 * MB // 10)), 422,
     "larger than 20 MB", "data/customer.csv"),
    ("pack-over-50-mb", lambda: with_files(data__notes_md="x" * (51 * MB)), 422, "over 50 MB", ""),
    ("not-a-zip", lambda: b"PK\x03\x04 this is not really a zip", 422, "not a valid zip", "upload"),
    ("gbk-csv", lambda: with_files(data__customer_csv="name,level,fax\n华东精密机械,vip,\n".encode("gbk")), 422,
     "not UTF-8", "data/customer.csv line 2"),
    ("sample-outside-data", lambda: with_files(pack_yaml=manifest(sample_data={"customer": "../customer.csv"})),
     422, "'..' not allowed", "pack.yaml: sample_data.customer"),
    ("reserved-field-key", lambda: with_files(pack_yaml=app_with(_bad_field_key)), 422, "reserved word",
     "pack.yaml: app.entities[0].fields[1].key"),
    ("bad-expression", lambda: with_files(pack_yaml=app_with(_bad_expression)), 422, "levle",
     "pack.yaml: app.rules[0]"),
    ("dangling-lookup", lambda: with_files(data__request_csv=REQUESTS.replace("设备无法启动,1", "设备无法启动,9")),
     422, "row 9 does not exist", "data/request.csv row 1, column customer"),
    ("lookup-target-loads-later", lambda: with_files(pack_yaml=manifest(
        sample_data={"request": "data/request.csv", "customer": "data/customer.csv"})), 422, "loads later",
     "data/request.csv row 1, column customer"),
    ("sample-for-unknown-entity", lambda: with_files(pack_yaml=manifest(
        sample_data={"customer": "data/customer.csv", "invoice": "data/request.csv"})), 422, "not an entity",
     "pack.yaml: sample_data.invoice"),
    ("column-not-a-field", lambda: with_files(data__customer_csv=CUSTOMERS.replace("fax", "telex")), 422,
     "'telex' is not a field", "data/customer.csv line 1, column telex"),
    ("engine-set-column", lambda: with_files(data__request_csv="subject,priority\nA,high\n"), 422,
     "set by the compute rule", "data/request.csv line 1, column priority"),
    ("bad-cell-value", lambda: with_files(data__customer_csv=CUSTOMERS.replace("vip", "gold")), 422,
     "must be one of", "data/customer.csv row 1, column level"),
    ("row-refused-by-the-pipeline", lambda: with_files(pack_yaml=app_with(_refusing_rule)), 422,
     "金额必须大于 0", "data/request.csv row 3, column amount"),
    ("needs-newer-jimu", lambda: with_files(pack_yaml=manifest(requires={"jimu": ">=99.0"})), 422, "needs Jimu",
     "pack.yaml: requires.jimu"),
    ("name-taken-by-another-app", lambda: with_files(), 409, "exists already", "pack.yaml: app.app"),
]


def snapshot(flask_app) -> dict:
    with flask_app.extensions["jimu"].engine.connect() as conn:
        return {"tables": sorted(sa.inspect(conn).get_table_names()),
                "apps": store.list_apps(conn),
                "teams": [r.key for r in conn.execute(sa.select(st.teams.c.key))],
                "audit": conn.execute(sa.select(sa.func.count()).select_from(st.audit)).scalar_one(),
                "counters": conn.execute(sa.select(sa.func.count()).select_from(st.counters)).scalar_one()}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_pack_is_refused_and_nothing_is_written(flask_app, api, case):
    name, build, status, text, where = case
    if name == "name-taken-by-another-app":
        app = helpdesk_app()
        app["label"] = "我自己的服务台"
        assert api.post("/apps", app)[0] == 201
    data = build()
    before = snapshot(flask_app)
    resp = api.client.post("/api/v1/packs/import?with_sample_data=1", data=data,
                           headers={**api._headers(), "Content-Type": "application/zip"})
    body = resp.get_json()
    assert resp.status_code == status, body
    error = body["error"]
    assert error["code"] == ("conflict" if status == 409 else "validation_failed")
    assert "/" in error["message"], "bilingual message"
    details = error.get("details")
    assert isinstance(details, list) and details, error
    assert all(set(d) >= {"location", "message"} for d in details)
    assert any(text in d["message"] for d in details) or text in error["message"], error
    assert any(d["location"].startswith(where) for d in details), details
    assert snapshot(flask_app) == before
    assert not any(a["app"] == "helpdesk" and a["pack"] for a in api.get("/apps")[1]["items"])


def test_the_plan_of_a_bad_pack_lists_every_problem(api):
    """A plan is a report: it answers 200 with all the problems it found, located."""
    bad = with_files(data__customer_csv=CUSTOMERS.replace("vip", "gold").replace("fax", "telex"),
                     data__request_csv=REQUESTS.replace("设备无法启动,1", "设备无法启动,7"))
    resp = api.client.post("/api/v1/packs/plan", data=bad, headers={**api._headers(), "Content-Type": "application/zip"})
    assert resp.status_code == 200
    locations = [e["location"] for e in resp.get_json()["errors"]]
    assert locations == ["data/customer.csv line 1, column telex", "data/customer.csv row 1, column level",
                         "data/request.csv row 1, column customer"]
