"""Export → import into a fresh database → export gives the identical pack (bytes included).

For each built-in pack (metadata), and with data for a small pack whose rules create nothing
(lookups, a self-reference, multiselect, decimals, dates, datetimes, booleans, a subtable).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from runtime.context import SYSTEM, Context
from templates_library.install import export_app, import_pack
from templates_library.loader import dump_pack, list_builtin_packs, load_pack

from .pack_helpers import pack_files, write_folder

NOW = datetime(2026, 3, 16, 10, 0, tzinfo=timezone(timedelta(hours=8)))
PACKS = list_builtin_packs()


def install(svc, pack, **kw):
    with svc.engine.begin() as conn:
        return import_pack(Context(conn, SYSTEM, NOW), svc, pack, **kw)


def export_to(svc, app_key, path, **kw):
    with svc.engine.connect() as conn:
        pack = export_app(conn, app_key, **kw)
    return pack, dump_pack(pack, path).read_bytes()


@pytest.mark.parametrize("folder", PACKS, ids=[p.name for p in PACKS])
def test_builtin_pack_round_trips(services, fresh_services, tmp_path, folder):
    original = load_pack(folder, now=NOW)
    install(services, original)
    first, first_bytes = export_to(services, original.app["app"], tmp_path / "first.zip")
    # what the store added (ids) is gone: the export is the pack's own app
    assert first.app == original.app
    assert (first.name, first.version) == (original.name, original.version)

    other = fresh_services()
    install(other, load_pack(tmp_path / "first.zip", now=NOW))
    second, second_bytes = export_to(other, original.app["app"], tmp_path / "second.zip")
    assert second == first
    assert second_bytes == first_bytes


DATA_APP = {
    "app": "contacts", "label": "通讯录", "timezone": "Asia/Shanghai",
    "entities": [
        {"key": "company", "label": "公司", "title_field": "name", "fields": [
            {"key": "name", "type": "text", "label": "名称", "required": True},
            {"key": "parent", "type": "lookup", "label": "上级公司", "target": "company"},
            {"key": "since", "type": "date", "label": "合作日期"},
            {"key": "vip", "type": "boolean", "label": "VIP"},
            {"key": "revenue", "type": "currency", "label": "营收"},
            {"key": "code", "type": "autonumber", "label": "编号", "format": "C-{0000}"},
        ]},
        {"key": "person", "label": "联系人", "title_field": "name", "fields": [
            {"key": "name", "type": "text", "label": "姓名", "required": True},
            {"key": "company", "type": "lookup", "label": "公司", "target": "company"},
            {"key": "channels", "type": "multiselect", "label": "渠道",
             "options": [{"value": "phone", "label": "电话"}, {"value": "wechat", "label": "微信"}]},
            {"key": "met_at", "type": "datetime", "label": "见面时间"},
            {"key": "score", "type": "number", "label": "评分"},
            {"key": "phones", "type": "subtable", "label": "电话", "fields": [
                {"key": "number", "type": "phone", "label": "号码", "required": True},
                {"key": "kind", "type": "text", "label": "类型"}]},
        ]},
    ],
}
COMPANIES = "name,parent,since,vip,revenue\n总部,,2020-01-31,true,1250000.5\n华东分公司,1,@today-30,false,\n"
PEOPLE = ('name,company,channels,met_at,score,phones\n王伟,2,phone;wechat,@today-3T09:30,4.5,'
          '"[{""number"": ""+86 21 5555 0101"", ""kind"": ""work""}]"\n李娜,1,,,,\n')


def test_data_round_trips_with_lookups_and_every_kind_of_cell(services, fresh_services, tmp_path):
    files = pack_files(app=DATA_APP, name="contacts", sample={"company": COMPANIES, "person": PEOPLE})
    pack = load_pack(write_folder(tmp_path / "src", files), now=NOW)
    install(services, pack, with_sample_data=True)
    first, first_bytes = export_to(services, "contacts", tmp_path / "first.zip", with_data=True)
    assert first.sample_data == {
        "company": [{"name": "总部", "parent": "", "since": "2020-01-31", "vip": "true", "revenue": "1250000.50"},
                    {"name": "华东分公司", "parent": "1", "since": "2026-02-14", "vip": "false", "revenue": ""}],
        "person": [{"name": "王伟", "company": "2", "channels": "phone;wechat", "met_at": "2026-03-13T09:30:00+08:00",
                    "score": "4.5", "phones": '[{"kind": "work", "number": "+86 21 5555 0101"}]'},
                   {"name": "李娜", "company": "1", "channels": "", "met_at": "", "score": "", "phones": ""}]}

    other = fresh_services()
    install(other, load_pack(tmp_path / "first.zip", now=NOW), with_sample_data=True)
    second, second_bytes = export_to(other, "contacts", tmp_path / "second.zip", with_data=True)
    assert second == first and second_bytes == first_bytes
