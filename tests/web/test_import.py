"""CSV/XLSX import over REST and the CLI, on both back ends: encodings, mapping suggested from
中文 labels, spreadsheet cells, per-row errors with the file's line, dedupe, dry run, both modes,
permissions, and hostile files."""
from __future__ import annotations

import io
from datetime import datetime

import pytest
import sqlalchemy as sa
from openpyxl import Workbook

from runtime import import_files, users
from runtime import system_tables as st_
from tests.conftest import Api, make_user
from tests.web.import_setup import count, imp_doc, rows, upload

CSV = (
    "客户名称,编号,邮箱,员工数,年收入,VIP客户,签约日期,等级,标签,备注\n"
    "华东精密机械,C001,info@huadong.example.cn,\"1,250\",\"￥1,250,000.50\",是,2026/1/31,重要,贵宾、华东,\"老客户\n两行备注\"\n"
    "北辰零售,C002,bc@example.com,80,300000,否,2025-12-01,普通,新客,\n"
    "南方物流,C003,,12,,TRUE,2026年3月5日,normal,,\n"
)


@pytest.fixture
def imp(api, make_app):
    make_app(imp_doc())
    return api


@pytest.mark.parametrize("encoding, name", [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gbk", "gbk"),
                                            ("utf-16", "utf-16")])
def test_encodings_and_suggested_mapping(imp, flask_app, encoding, name):
    st, out = upload(imp, "customer", CSV.encode(encoding))
    assert st == 200, out
    assert (out["created"], out["updated"], out["skipped"], out["errors"]) == (3, 0, 0, [])
    assert out["encoding"] == name
    assert out["mapping"] == {"客户名称": "name", "编号": "code", "邮箱": "email", "员工数": "employees",
                              "年收入": "revenue", "VIP客户": "vip", "签约日期": "since", "等级": "level",
                              "标签": "tags", "备注": "notes"}
    got = rows(flask_app)
    first = got[0]
    assert first["name"] == "华东精密机械" and first["employees"] == 1250 and str(first["revenue"]) == "1250000.50"
    assert first["vip"] is True and first["since"].isoformat() == "2026-01-31" and first["level"] == "key"
    assert first["tags"] == ["vip", "east"] and first["notes"] == "老客户\n两行备注"
    assert first["size_band"] == 2500                                   # the pipeline ran: formulas computed
    assert got[1]["vip"] is False and got[2]["since"].isoformat() == "2026-03-05" and got[2]["email"] is None
    st, log = imp.get("/audit?action=import")
    assert log["items"][0]["summary"].startswith("imported 3 new")
    st, tl = imp.get(f"/apps/imp/customer/{first['id']}/timeline")
    assert tl["items"][-1]["kind"] == "create"


def test_keys_as_headers_tabs_and_semicolons(imp, flask_app):
    st, out = upload(imp, "customer", b"name\tcode\tphone\nA\tK1\t+86 21 5555 0101\n")
    assert st == 200 and out["created"] == 1 and out["mapping"] == {"name": "name", "code": "code", "phone": "phone"}
    st, out = upload(imp, "customer", b"Name;Code;extra\nB;K2;whatever\n", filename="x.txt")
    assert st == 200 and out["created"] == 1 and out["ignored_columns"] == ["extra"]


def test_explicit_mapping_and_its_errors(imp, flask_app):
    data = "公司,邮件,人数\n甲公司,a@x.cn,5\n".encode()
    st, out = upload(imp, "customer", data, mapping={"公司": "name", "邮件": "email", "人数": None})
    assert st == 200 and out["created"] == 1 and out["ignored_columns"] == ["人数"]
    for mapping, where, status in (
            ({"公司": "nmae"}, "mapping.公司", 422),             # unknown field, with a suggestion
            ({"nope": "name"}, "mapping.nope", 422),            # no such column
            ({"公司": "size_band"}, "mapping.公司", 422),       # a formula cannot be imported
            ({"公司": "name", "邮件": "name"}, "mapping.邮件", 422),   # one field twice
            ({"公司": "id"}, "mapping.公司", 422)):             # a system field
        st, out = upload(imp, "customer", data, mapping=mapping)
        assert st == status and where in out["error"]["details"], (mapping, out)
    st, out = upload(imp, "customer", data, mapping={"公司": "nmae"})
    assert "name" in out["error"]["details"]["mapping.公司"][0]
    resp = imp.client.post("/api/v1/apps/imp/customer/import", headers=imp._headers(), content_type="multipart/form-data",
                           data={"file": (io.BytesIO(data), "a.csv"), "mapping": "{not json"})
    assert resp.status_code == 422
    st, out = upload(imp, "customer", b"x,y\n1,2\n")
    assert st == 422 and "mapping" in out["error"]["details"]          # nothing matches
    st, out = upload(imp, "customer", data, mapping={"公司": "name"}, dedupe="name")
    assert st == 422 and "dedupe" in out["error"]["details"]           # not a unique field
    st, out = upload(imp, "customer", data, mapping={"公司": "name"}, mode="some")
    assert st == 422 and "mode" in out["error"]["details"]
    st, out = upload(imp, "customer", data, mapping={"公司": "name"}, colour="red")
    assert st == 422 and "colour" in out["error"]["details"]
    assert count(flask_app.extensions["jimu"]) == 1


BAD = (
    "客户名称,编号,邮箱,员工数,签约日期,等级\n"      # line 1
    "好客户,G1,g1@x.cn,10,2026-01-01,重要\n"          # line 2
    ",G2,not-an-email,-5,2026-13-01,金牌\n"           # line 3: name, email, employees, since, level
    "\"多行\n名称\",G3,,7,,\n"                          # lines 4-5: fine
    "另一个,G1,,abc,,\n"                                # line 6: code taken (line 2), employees
    "\n"                                               # line 7: blank, ignored
    "最后,G4,g4@x.cn,1,,\n"                            # line 8: fine
)


def test_all_or_nothing_reports_every_bad_row_by_line_and_stores_nothing(imp, flask_app):
    st, out = upload(imp, "customer", BAD.encode())
    assert st == 422 and out["error"]["code"] == "validation_failed"
    report = out["error"]["details"]
    assert (report["created"], report["updated"], report["skipped"]) == (0, 0, 0)
    by_line = {}
    for e in report["errors"]:
        by_line.setdefault(e["line"], set()).add(e["field"])
    assert by_line == {3: {"name", "email", "employees", "since", "level"}, 6: {"code", "employees"}}
    assert all(e["message"] for e in report["errors"])
    assert next(e for e in report["errors"] if e["field"] == "email")["column"] == "邮箱"
    assert count(flask_app.extensions["jimu"]) == 0
    st, log = imp.get("/audit?app=imp")
    assert [e for e in log["items"] if e["action"] in ("create", "import")] == []


def test_skip_bad_rows_imports_the_good_ones(imp, flask_app):
    st, out = upload(imp, "customer", BAD.encode(), mode="skip_bad_rows")
    assert st == 200, out
    assert out["created"] == 3 and out["error_rows"] == 2 and {e["line"] for e in out["errors"]} == {3, 6}
    assert [r["code"] for r in rows(flask_app)] == ["G1", "G3", "G4"]
    assert rows(flask_app)[1]["name"] == "多行\n名称"


def test_dry_run_answers_what_would_happen_and_writes_nothing(imp, flask_app):
    st, out = upload(imp, "customer", BAD.encode(), mode="skip_bad_rows", dry_run="true")
    assert st == 200 and out["dry_run"] is True and out["created"] == 3 and out["imported"] is False
    assert {e["line"] for e in out["errors"]} == {3, 6}
    st, out = upload(imp, "customer", BAD.encode(), dry_run="1")        # all or nothing: would create nothing
    assert st == 200 and out["created"] == 0 and out["valid_rows"] == 3 and out["error_rows"] == 2
    svc = flask_app.extensions["jimu"]
    assert count(svc) == 0
    st, log = imp.get("/audit?app=imp")
    assert [e for e in log["items"] if e["action"] in ("create", "import")] == []
    with svc.engine.connect() as conn:                                   # no autonumber or counter consumed
        assert conn.execute(sa.select(sa.func.count()).select_from(st_.counters)).scalar_one() == 0


def test_dedupe_updates_or_skips_instead_of_duplicating(imp, flask_app):
    first = "编号,客户名称,员工数\nD1,甲,1\nD2,乙,2\nD3,丙,3\n"
    assert upload(imp, "customer", first.encode())[1]["created"] == 3
    again = "编号,客户名称,员工数\nD1,甲,10\nD2,乙,2\nD4,丁,4\n"
    st, out = upload(imp, "customer", again.encode(), dedupe="code", on_duplicate="skip")
    assert st == 200 and (out["created"], out["updated"], out["skipped"]) == (1, 0, 2)
    st, out = upload(imp, "customer", again.replace("D4", "D5").encode(), dedupe="code", on_duplicate="update",
                     dry_run="yes")
    assert (out["created"], out["updated"], out["skipped"], out["unchanged"]) == (1, 1, 1, 1)
    st, out = upload(imp, "customer", again.encode(), dedupe="code", on_duplicate="update")
    assert st == 200 and (out["created"], out["updated"], out["skipped"], out["unchanged"]) == (0, 1, 2, 2)
    got = {r["code"]: r for r in rows(flask_app)}
    assert len(got) == 4 and got["D1"]["employees"] == 10 and got["D1"]["_version"] == 2
    assert got["D1"]["size_band"] == 20                                  # formulas recomputed on update
    st, tl = imp.get(f"/apps/imp/customer/{got['D1']['id']}/timeline")
    assert tl["items"][0]["kind"] == "update" and tl["items"][0]["details"]["after"] == {"employees": 10,
                                                                                           "size_band": 20}
    # the same value twice in one file: skipped in skip mode, an error in update mode
    twice = "编号,客户名称\nD9,x\nD9,y\n"
    st, out = upload(imp, "customer", twice.encode(), dedupe="code", on_duplicate="skip")
    assert (out["created"], out["skipped"]) == (1, 1)
    st, out = upload(imp, "customer", "编号,客户名称\nD8,x\nD8,y\n".encode(), dedupe="code", on_duplicate="update")
    assert st == 422 and out["error"]["details"]["errors"][0]["line"] == 3


def test_xlsx_with_typed_cells(imp, flask_app):
    wb = Workbook()
    ws = wb.active
    ws.append(["客户名称", "员工数", "签约日期", "最近联系", "VIP客户", "电话", "折扣"])
    ws.append(["表格客户", 42, datetime(2026, 2, 3), datetime(2026, 2, 3, 9, 30), True, 13800138000, "12.5%"])
    ws.append([None, None, None, None, None, None, None])
    ws.append(["=1+2", "=2*3", "2026/2/4", "2026-02-04 10:00", False, "021-5555 0101", 0.5])
    ws.cell(row=4, column=1).data_type = "s"          # text that looks like a formula
    buf = io.BytesIO()
    wb.save(buf)
    st, out = upload(imp, "customer", buf.getvalue(), filename="客户.xlsx")
    assert st == 200 and out["kind"] == "xlsx" and out["created"] == 2, out
    a, b = rows(flask_app)
    assert a["employees"] == 42 and a["since"].isoformat() == "2026-02-03" and a["vip"] is True
    assert a["phone"] == "13800138000" and str(a["discount"]) == "12.50"
    assert a["last_contact"].isoformat() == "2026-02-03T01:30:00+00:00"    # app time zone (Asia/Shanghai)
    assert b["name"] == "=1+2"                       # text that looks like a formula stays inert text
    assert b["employees"] is None                    # a real formula is never evaluated: no cached value, empty
    assert b["since"].isoformat() == "2026-02-04" and str(b["discount"]) == "0.50"


def test_lookups_by_title_and_users_by_name(imp, flask_app):
    make_user(flask_app, "王经理")
    st, out = upload(imp, "customer", "客户名称,编号,客户经理\n甲公司,L1,王经理\n乙公司,L2,\n乙公司,L3,nobody\n"
                     "乙公司,L4,\n".encode(), mode="skip_bad_rows")
    assert out["errors"][0]["line"] == 4 and "nobody" in out["errors"][0]["message"]
    got = rows(flask_app)
    assert [r["code"] for r in got] == ["L1", "L2", "L4"] and got[0]["manager"] is not None
    st, out = upload(imp, "order", "订单号,客户,金额\nO1,甲公司,10\nO2,乙公司,20\nO3,丙公司,30\nO4,1,5\n".encode(),
                     mode="skip_bad_rows")
    assert out["created"] == 2, out
    messages = {e["line"]: e["message"] for e in out["errors"]}
    assert "more than one" in messages[3] and "no 客户 named '丙公司'" in messages[4]
    orders = rows(flask_app, "order")
    assert [o["customer"] for o in orders] == [got[0]["id"], got[0]["id"]]


def test_import_permissions(imp, flask_app, login_as):
    clerk = login_as("clerk1", app_roles={"imp": ["clerk"]})
    entry = login_as("entry1", app_roles={"imp": ["entry"]})
    nobody = login_as("nobody1")
    data = "客户名称,编号\n甲,P1\n".encode()
    assert upload(nobody, "customer", data)[0] == 403
    st, out = upload(clerk, "customer", data)
    assert st == 200 and out["created"] == 1
    assert rows(flask_app)[0]["owner"] is not None
    st, out = upload(clerk, "customer", "客户名称,年收入\n乙,5\n".encode())
    assert st == 403 and "revenue" in out["error"]["details"]           # hidden for clerks
    st, out = upload(clerk, "customer", "客户名称,等级\n乙,重要\n".encode())
    assert st == 403 and "level" in out["error"]["details"]             # read-only for clerks
    st, out = upload(entry, "customer", data, dedupe="code", on_duplicate="update")
    assert st == 403                                                     # entry may create, not update
    # a clerk's dedupe update cannot reach someone else's record
    st, out = upload(imp, "customer", "客户名称,编号\n管理员的,P9\n".encode())
    st, out = upload(clerk, "customer", "客户名称,编号\n改名,P9\n改名,P1\n".encode(), dedupe="code",
                     on_duplicate="update", mode="skip_bad_rows")
    assert out["updated"] == 1 and [e["line"] for e in out["errors"]] == [2]
    with flask_app.extensions["jimu"].engine.begin() as conn:
        row = users.find_user(conn, "clerk1")
        token = users.create_token(conn, row.id, "ro", "read")["token"]
    assert upload(Api(flask_app.test_client(), token), "customer", data)[0] == 403


@pytest.mark.parametrize("data, filename, status", [
    (b"", "a.csv", 422),                                                # empty
    (b"\x00\x01\x02\x03binary\x00junk" * 50, "a.csv", 422),            # binary junk
    (bytes(range(256)) * 40, "data.csv", 422),                         # neither UTF-8 nor GBK text
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old.xls", 422),   # old Excel
    (b"PK\x03\x04 not really a zip", "a.xlsx", 422),                   # broken zip
    (b"name\n" + b"x" * 10, "a.xlsx", 422),                            # .xlsx that is not a workbook
    (b",,,\n1,2,3\n", "a.csv", 422),                                   # no column names
    (b"name,name\nx,y\n", "a.csv", 422),                               # duplicate columns
])
def test_hostile_files_get_clear_errors(imp, flask_app, data, filename, status):
    st, out = upload(imp, "customer", data, filename=filename)
    assert st == status and out["error"]["code"] == "validation_failed", out
    assert out["error"]["message"]
    assert count(flask_app.extensions["jimu"]) == 0


def test_a_zip_that_is_not_a_workbook_and_path_like_names(imp, flask_app):
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../evil.txt", "x")
    st, out = upload(imp, "customer", buf.getvalue(), filename="book.xlsx")
    assert st == 422
    st, out = upload(imp, "customer", "客户名称\n路径客户\n".encode(), filename="../../../etc/passwd.csv")
    assert st == 200 and out["created"] == 1          # the name is never a path: only the content counts


def test_size_and_row_limits(imp, flask_app, monkeypatch):
    monkeypatch.setattr(import_files, "MAX_BYTES", 1000)
    st, out = upload(imp, "customer", ("客户名称\n" + "甲\n" * 600).encode())
    assert st == 413 and out["error"]["code"] == "payload_too_large"
    monkeypatch.setattr(import_files, "MAX_BYTES", 50 * 1024 * 1024)
    monkeypatch.setattr(import_files, "MAX_ROWS", 5)
    st, out = upload(imp, "customer", ("客户名称\n" + "".join(f"c{i}\n" for i in range(6))).encode(),
                     mode="skip_bad_rows")
    assert st == 413 and "5" in out["error"]["message"]
    assert count(flask_app.extensions["jimu"]) == 0
    wb = Workbook()
    for i in range(8):
        wb.active.append([f"c{i}"])
    buf = io.BytesIO()
    wb.save(buf)
    assert upload(imp, "customer", buf.getvalue(), filename="a.xlsx")[0] == 413


def test_request_shape_errors(imp):
    resp = imp.client.post("/api/v1/apps/imp/customer/import", json={"file": "x"}, headers=imp._headers())
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "bad_request"
    resp = imp.client.post("/api/v1/apps/imp/customer/import", data={"mapping": "{}"}, headers=imp._headers(),
                           content_type="multipart/form-data")
    assert resp.status_code == 422 and "file" in resp.get_json()["error"]["details"]
    assert upload(imp, "nosuch", b"a\n1\n")[0] == 404
    assert upload(imp, "customer", b"a\n1\n", app="noapp")[0] == 404


def test_the_cli_imports_with_a_report(imp, flask_app, db_url, tmp_path, capsys, monkeypatch):
    from web.cli import main
    monkeypatch.setenv("JIMU_DATABASE_URL", db_url)
    path = tmp_path / "客户.csv"
    path.write_bytes(BAD.encode("gbk"))
    code = main(["import", "imp", "customer", str(path), "--dry-run", "--mode", "skip_bad_rows"])
    out = capsys.readouterr()
    assert code == 0 and "3 would be created" in out.out and "line 3" in out.out
    assert count(flask_app.extensions["jimu"]) == 0
    code = main(["import", "imp", "customer", str(path)])
    out = capsys.readouterr()
    assert code == 1 and "nothing was imported" in out.err and "line 6" in out.err
    code = main(["import", "imp", "customer", str(path), "--mode", "skip_bad_rows", "--map", "客户名称=name",
                 "编号=code", "--map", "员工数=employees"])
    out = capsys.readouterr()
    assert code == 0 and "3 created" in out.out, out
    assert sorted(r["code"] for r in rows(flask_app)) == ["G1", "G3", "G4"]
    code = main(["import", "imp", "customer", str(path), "--dedupe", "code", "--on-duplicate", "skip",
                 "--map", "客户名称=name", "编号=code", "--mode", "skip_bad_rows"])
    assert code == 0 and "0 created, 0 updated, 4 skipped, 1 with errors" in capsys.readouterr().out
    assert main(["import", "imp", "customer", str(tmp_path / "missing.csv")]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["import", "imp", "customer", str(path), "--map", "nonsense"]) == 1
    assert main(["import", "imp", "customer", str(path), "--user", "nobody"]) == 1
