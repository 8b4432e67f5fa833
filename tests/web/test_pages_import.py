"""The import page through the Flask client, on SQLite and PostgreSQL: upload (CSV in GBK, XLSX),
the mapping screen with suggestions preselected, dry run, both modes with the per-line error table,
dedupe, CSRF, permissions, and hostile input (markup in cells and headers, forged upload ids,
binary, empty and oversized files) — each a clear message, nothing written, markup inert."""
from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from openpyxl import Workbook

from runtime import import_files
from runtime import system_tables as st_
from tests.web.import_setup import count, imp_doc, multipart, rows
from tests.web.pages_support import sign_in

URL = "/apps/imp/customer/import"
XSS = "<img src=x onerror=alert(1)>"

CSV = (
    "客户名称,编号,邮箱,员工数,VIP客户,签约日期,等级,备注\n"
    "华东精密机械,C001,info@huadong.example.cn,\"1,250\",是,2026/1/31,重要,老客户\n"
    "北辰零售,C002,bc@example.com,80,否,2025-12-01,普通,\n"
    "南方物流,C003,,12,TRUE,2026年3月5日,normal,\n"
)

BAD = (
    "客户名称,编号,邮箱,员工数\n"     # line 1
    "好客户,G1,g1@x.cn,10\n"          # line 2
    ",G2,not-an-email,-5\n"           # line 3: name, email, employees
    "第三,G3,,7\n"                    # line 4
    "第四,G4,,abc\n"                  # line 5: employees
)


@pytest.fixture
def imp(make_app):
    doc = imp_doc()
    doc["roles"].append("viewer")
    doc["permissions"].append({"role": "viewer", "entity": "customer", "read": "all"})
    make_app(doc)


def post_file(pc, data: bytes, filename: str = "客户.csv", *, csrf: bool = True, url: str = URL, **form):
    fields = {"step": "upload", **form}
    if csrf:
        fields["csrf_token"] = pc.csrf
    body, content_type = multipart(data, filename, fields)
    return pc.client.post(url, data=body, content_type=content_type)


def upload_id(html: str) -> str:
    return re.search(r'name="upload" value="([^"]+)"', html).group(1)


def preselected(html: str) -> dict[str, str]:
    """map-N -> the field preselected on the mapping screen ("" for ignore)."""
    out = {}
    for name, options in re.findall(r'<select id="(map-\d+)" name="map-\d+">(.*?)</select>', html, re.S):
        m = re.search(r'<option value="([^"]*)" selected>', options)
        out[name] = m.group(1) if m else ""
    return out


def run(pc, html: str, action: str = "import", mapping: dict | None = None, **opts):
    data = {"step": "map", "upload": upload_id(html), "action": action, **preselected(html), **(mapping or {}),
            **opts}
    return pc.post(URL, data)


def kept_files(flask_app) -> int:
    with flask_app.extensions["jimu"].engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(st_.import_uploads)).scalar_one()


def columns_of(html: str) -> dict[str, str]:
    """column name (as the page shows it) -> its select's id."""
    return dict((label, f"map-{i}") for i, label in re.findall(r'<label for="map-(\d+)">([^<]*)</label>', html))


def test_the_list_links_to_the_page_for_those_who_may_create(imp, flask_app):
    admin = sign_in(flask_app)
    assert f'href="{URL}"' in admin.get("/apps/imp/customer").text
    viewer = sign_in(flask_app, "viewer1", "user", app_roles={"imp": ["viewer"]})
    html = viewer.get("/apps/imp/customer").text
    assert "记录" in html and f'href="{URL}"' not in html
    page = admin.get(URL)
    assert page.status_code == 200
    html = page.text
    assert 'enctype="multipart/form-data"' in html and 'name="csrf_token"' in html
    assert "最大 50 MB、1,000,000 行" in html                         # the page says the limit
    dedupe = re.search(r'<select id="dedupe".*?</select>', html, re.S).group(0)
    assert re.findall(r'<option value="(\w*)"', dedupe) == ["", "code", "email"]    # the unique fields


def test_gbk_csv_with_the_suggested_mapping_preselected(imp, flask_app):
    pc = sign_in(flask_app)
    resp = post_file(pc, CSV.encode("gbk"))
    assert resp.status_code == 200, resp.text
    html = resp.text
    assert "按 GBK 编码读取" in html
    cols = columns_of(html)
    chosen = preselected(html)
    assert {name: chosen[sel] for name, sel in cols.items()} == {
        "客户名称": "name", "编号": "code", "邮箱": "email", "员工数": "employees", "VIP客户": "vip",
        "签约日期": "since", "等级": "level", "备注": "notes"}
    preview = html[html.index('class="records preview"'):]
    assert "华东精密机械" in preview and "南方物流" in preview and "<td>4</td>" in preview   # lines, in 中文
    assert count(flask_app.extensions["jimu"]) == 0 and kept_files(flask_app) == 1
    resp = run(pc, html)
    assert resp.status_code == 200, resp.text
    done = resp.text
    assert "导入完成" in done and re.search(r'id="count-created">3<', done) and re.search(r'id="count-rows">3<', done)
    got = rows(flask_app)
    assert [r["name"] for r in got] == ["华东精密机械", "北辰零售", "南方物流"]
    assert got[0]["employees"] == 1250 and got[0]["vip"] is True and got[0]["level"] == "key"
    assert kept_files(flask_app) == 0                     # an import that wrote deletes its file
    again = run(pc, html)                                 # posting the page again imports nothing twice
    assert again.status_code == 404 and "过期" in again.text and count(flask_app.extensions["jimu"]) == 3


def test_xlsx_through_the_page(imp, flask_app):
    wb = Workbook()
    wb.active.append(["客户名称", "员工数", "签约日期", "说明"])
    wb.active.append(["表格客户", 42, "2026/2/3", "不导入"])
    wb.active.append(["第二个", 7, None, None])
    buf = io.BytesIO()
    wb.save(buf)
    pc = sign_in(flask_app)
    resp = post_file(pc, buf.getvalue(), "客户.xlsx")
    assert resp.status_code == 200, resp.text
    html = resp.text
    assert "XLSX" in html and preselected(html)[columns_of(html)["说明"]] == ""      # no field: ignored
    resp = run(pc, html)
    assert resp.status_code == 200 and re.search(r'id="count-created">2<', resp.text)
    got = rows(flask_app)
    assert got[0]["employees"] == 42 and got[0]["since"].isoformat() == "2026-02-03" and got[1]["name"] == "第二个"


def test_dry_run_writes_nothing_then_the_same_upload_imports(imp, flask_app):
    pc = sign_in(flask_app)
    html = post_file(pc, CSV.encode()).text
    resp = run(pc, html, "dry_run")
    assert resp.status_code == 200
    out = resp.text
    assert "试运行：未写入任何数据" in out and "将新建" in out and re.search(r'id="count-created">3<', out)
    assert 'id="map-form"' in out                         # the mapping stays for the real import
    svc = flask_app.extensions["jimu"]
    assert count(svc) == 0
    with svc.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(st_.audit)
                            .where(st_.audit.c.action.in_(["create", "import"]))).scalar_one() == 0
    resp = run(pc, out)
    assert resp.status_code == 200 and count(svc) == 3


def test_skip_bad_rows_reports_each_line_and_imports_the_others(imp, flask_app):
    pc = sign_in(flask_app)
    html = post_file(pc, BAD.encode(), mode="skip_bad_rows").text
    assert 'value="skip_bad_rows" checked' in html        # the choice of step 1 carried to step 2
    resp = run(pc, html, mode="skip_bad_rows")
    assert resp.status_code == 200
    out = resp.text
    assert re.search(r'id="count-created">2<', out) and re.search(r'id="count-errors">2<', out)
    table = out[out.index('class="records import-errors"'):]
    lines = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td><td>([^<]*)</td><td>[^<]+</td></tr>", table)
    assert {(line, column) for line, column, _field in lines} == {
        ("3", "客户名称"), ("3", "邮箱"), ("3", "员工数"), ("5", "员工数")}
    assert ("3", "邮箱", "邮箱") in lines                  # the field by its label
    assert [r["code"] for r in rows(flask_app)] == ["G1", "G3"]


def test_all_or_nothing_with_a_bad_row_writes_nothing(imp, flask_app):
    pc = sign_in(flask_app)
    html = post_file(pc, BAD.encode()).text
    resp = run(pc, html)
    assert resp.status_code == 422
    out = resp.text
    assert "未导入任何数据" in out and 'role="alert"' in out and "2 行没有错误" in out
    assert re.search(r'id="count-created">0<', out) and "<tr><td>5</td>" in out
    assert count(flask_app.extensions["jimu"]) == 0
    resp = run(pc, out, mode="skip_bad_rows")            # the same upload, now skipping bad rows
    assert resp.status_code == 200 and count(flask_app.extensions["jimu"]) == 2


def test_dedupe_updates_existing_records(imp, flask_app):
    pc = sign_in(flask_app)
    run(pc, post_file(pc, "编号,客户名称,员工数\nD1,甲,1\nD2,乙,2\n".encode()).text)
    html = post_file(pc, "编号,客户名称,员工数\nD1,甲,10\nD3,丙,3\n".encode(), dedupe="code",
                     on_duplicate="update").text
    assert '<option value="code" selected>' in html and 'value="update" checked' in html
    resp = run(pc, html, dedupe="code", on_duplicate="update")
    assert resp.status_code == 200, resp.text
    assert re.search(r'id="count-created">1<', resp.text) and re.search(r'id="count-updated">1<', resp.text)
    got = {r["code"]: r for r in rows(flask_app)}
    assert len(got) == 3 and got["D1"]["employees"] == 10 and got["D1"]["_version"] == 2


def test_without_the_csrf_token_nothing_is_kept_or_written(imp, flask_app):
    pc = sign_in(flask_app)
    resp = post_file(pc, CSV.encode(), csrf=False)
    assert resp.status_code == 403 and "CSRF" in resp.text and kept_files(flask_app) == 0
    html = post_file(pc, CSV.encode()).text
    resp = pc.client.post(URL, data={"step": "map", "upload": upload_id(html), "action": "import",
                                     **preselected(html)})
    assert resp.status_code == 403 and count(flask_app.extensions["jimu"]) == 0


def test_only_users_who_may_create_use_the_page(imp, flask_app):
    admin = sign_in(flask_app)
    admins_upload = upload_id(post_file(admin, CSV.encode()).text)
    for name, roles in (("viewer1", {"imp": ["viewer"]}), ("nobody1", {})):
        pc = sign_in(flask_app, name, "user", app_roles=roles)
        resp = pc.get(URL)
        assert resp.status_code == 403 and 'role="alert"' in resp.text and "Traceback" not in resp.text
        assert post_file(pc, CSV.encode()).status_code == 403
        resp = pc.post(URL, {"step": "map", "upload": admins_upload, "action": "import", "map-0": "name"})
        assert resp.status_code == 403
    assert kept_files(flask_app) == 1 and count(flask_app.extensions["jimu"]) == 0
    # a clerk may create: hidden and read-only fields are not offered, and a forged choice is refused
    clerk = sign_in(flask_app, "clerk1", "user", app_roles={"imp": ["clerk"]})
    resp = post_file(clerk, "客户名称,年收入,等级\n甲,5,重要\n".encode())
    assert resp.status_code == 200
    html = resp.text
    assert 'value="revenue"' not in html and 'value="level"' not in html and "年收入" in html
    assert set(preselected(html).values()) == {"name", ""}
    resp = run(clerk, html, mapping={columns_of(html)["年收入"]: "revenue"})
    assert resp.status_code == 403 and "revenue" in resp.text and 'id="map-form"' in resp.text
    resp = clerk.post(URL, {"step": "map", "upload": admins_upload, "action": "import", "map-0": "name"})
    assert resp.status_code == 404 and count(flask_app.extensions["jimu"]) == 0     # not the clerk's file
    assert run(clerk, html).status_code == 200 and count(flask_app.extensions["jimu"]) == 1


def test_markup_in_cells_headers_and_errors_stays_text(imp, flask_app):
    pc = sign_in(flask_app)
    data = f'客户名称,邮箱,"{XSS}"\n"{XSS}",{XSS},"{XSS}"\n'.encode()
    resp = post_file(pc, data, filename=f"{XSS}.csv")
    assert resp.status_code == 200
    html = resp.text
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    resp = run(pc, html, "dry_run", mode="skip_bad_rows")
    assert resp.status_code == 200
    out = resp.text
    assert XSS not in out and "&lt;img" in out and re.search(r'id="count-errors">1<', out)   # the bad email
    resp = run(pc, out, mapping={"map-1": ""}, mode="skip_bad_rows")
    assert resp.status_code == 200 and rows(flask_app)[0]["name"] == XSS                       # kept as text
    assert XSS not in pc.get("/apps/imp/customer").text


@pytest.mark.parametrize("upload, status", [
    ("../../etc/passwd", 400),                               # a path
    ("..%2F..%2Fjimu.db", 400),
    ("", 400),
    ("A" * 32, 404),                                         # the right shape, but no such file
])
def test_forged_upload_ids_are_refused(imp, flask_app, upload, status):
    pc = sign_in(flask_app)
    resp = pc.post(URL, {"step": "map", "upload": upload, "action": "import", "map-0": "name"})
    assert resp.status_code == status and 'role="alert"' in resp.text and 'id="upload-form"' in resp.text
    assert count(flask_app.extensions["jimu"]) == 0


@pytest.mark.parametrize("data, filename, status, message", [
    (b"", "a.csv", 422, "文件为空"),                                         # empty
    (b"", "", 422, "请选择一个 CSV 或 XLSX 文件"),                             # no file chosen
    (b"\x00\x01\x02\x03binary\x00junk" * 50, "a.csv", 422, "不是 CSV 或 XLSX"),   # binary junk
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "photo.png", 422, "编码"),   # an image
    (b"PK\x03\x04 not really a zip", "a.xlsx", 422, "xlsx"),                # broken workbook
    (b"name,name\nx,y\n", "a.csv", 422, "列名重复"),                          # duplicate columns
])
def test_bad_files_get_a_clear_message(imp, flask_app, data, filename, status, message):
    pc = sign_in(flask_app)
    resp = post_file(pc, data, filename)
    assert resp.status_code == status
    assert message in resp.text and 'role="alert"' in resp.text and 'id="upload-form"' in resp.text
    assert kept_files(flask_app) == 0 and count(flask_app.extensions["jimu"]) == 0


def test_a_file_past_the_default_request_size_but_within_the_import_limit(imp, flask_app):
    pc = sign_in(flask_app)
    data = ("客户名称,备注\n" + ("甲," + "备" * 700 + "\n") * 10_500).encode()
    assert flask_app.config["MAX_CONTENT_LENGTH"] < len(data) < import_files.MAX_BYTES
    resp = post_file(pc, data)
    assert resp.status_code == 200 and 'id="map-form"' in resp.text and kept_files(flask_app) == 1


def test_files_over_the_limit(imp, flask_app, monkeypatch):
    monkeypatch.setattr(import_files, "MAX_BYTES", 1000)
    pc = sign_in(flask_app)
    resp = post_file(pc, ("客户名称\n" + "甲\n" * 600).encode())    # over the file limit: the form says so
    assert resp.status_code == 413 and "文件超过" in resp.text and 'id="upload-form"' in resp.text
    resp = post_file(pc, b"x" * (2 * 1024 * 1024))                  # a request far past it: the error page
    assert resp.status_code == 413 and "文件超过" in resp.text and 'role="alert"' in resp.text
    monkeypatch.setattr(import_files, "MAX_BYTES", 50 * 1024 * 1024)
    monkeypatch.setattr(import_files, "MAX_ROWS", 3)
    resp = post_file(pc, ("客户名称\n" + "".join(f"c{i}\n" for i in range(5))).encode())
    assert resp.status_code == 413 and "3" in resp.text
    assert kept_files(flask_app) == 0 and count(flask_app.extensions["jimu"]) == 0


def test_mapping_mistakes_come_back_on_the_form(imp, flask_app):
    pc = sign_in(flask_app)
    html = post_file(pc, "公司,代号\n甲,X1\n".encode()).text
    assert set(preselected(html).values()) == {""}                  # nothing to suggest
    resp = run(pc, html)
    assert resp.status_code == 422 and "没有列能对应到字段" in resp.text and 'id="map-form"' in resp.text
    resp = run(pc, html, mapping={"map-0": "name", "map-1": "name"})
    assert resp.status_code == 422 and "代号" in resp.text              # the column mapped twice, named
    assert '<option value="name" selected>' in resp.text               # the user's choices are kept
    resp = run(pc, html, mapping={"map-0": "name", "map-1": "size_band"})
    assert resp.status_code == 422                                      # a formula is not importable
    resp = run(pc, html, mapping={"map-0": "name"}, dedupe="code")
    assert resp.status_code == 422 and "去重字段没有对应的列" in resp.text
    assert pc.post(URL, {"step": "other"}).status_code == 400
    assert pc.post(URL, {"step": "map", "upload": upload_id(html), "action": "launch"}).status_code == 400
    assert count(flask_app.extensions["jimu"]) == 0
    assert run(pc, html, mapping={"map-0": "name", "map-1": "code"}).status_code == 200
    assert rows(flask_app)[0]["code"] == "X1"


def test_kept_files_expire_and_only_the_newest_few_stay(imp, flask_app):
    from runtime import import_uploads
    pc = sign_in(flask_app)
    pages = [post_file(pc, f"客户名称\n客户{i}\n".encode()).text for i in range(import_uploads.KEEP_PER_USER + 1)]
    assert kept_files(flask_app) == import_uploads.KEEP_PER_USER
    assert run(pc, pages[0]).status_code == 404                       # the oldest was let go
    t = st_.import_uploads
    with flask_app.extensions["jimu"].engine.begin() as conn:
        conn.execute(t.update().values(created_at=datetime.now(UTC) - import_uploads.TTL - timedelta(minutes=1)))
    assert run(pc, pages[-1]).status_code == 404                      # expired
    post_file(pc, "客户名称\n新的\n".encode())
    assert kept_files(flask_app) == 1 and count(flask_app.extensions["jimu"]) == 0
