"""An app and helpers for the import tests: upload a file over REST, count rows."""
from __future__ import annotations

import copy
import io
import json
import uuid

import sqlalchemy as sa

IMP = {
    "app": "imp",
    "label": "导入",
    "roles": ["clerk", "entry"],
    "entities": [
        {"key": "customer", "label": "客户", "title_field": "name", "fields": [
            {"key": "name", "type": "text", "label": "客户名称", "required": True, "max_length": 100},
            {"key": "code", "type": "text", "label": "编号", "unique": True},
            {"key": "email", "type": "email", "label": "邮箱", "unique": True},
            {"key": "phone", "type": "phone", "label": "电话"},
            {"key": "employees", "type": "number", "label": "员工数", "min": 0},
            {"key": "revenue", "type": "currency", "label": "年收入"},
            {"key": "discount", "type": "percent", "label": "折扣"},
            {"key": "vip", "type": "boolean", "label": "VIP客户"},
            {"key": "since", "type": "date", "label": "签约日期"},
            {"key": "last_contact", "type": "datetime", "label": "最近联系"},
            {"key": "level", "type": "select", "label": "等级", "options": [
                {"value": "key", "label": "重要"}, {"value": "normal", "label": "普通"}]},
            {"key": "tags", "type": "multiselect", "label": "标签", "options": [
                {"value": "vip", "label": "贵宾"}, {"value": "new", "label": "新客"}, {"value": "east", "label": "华东"}]},
            {"key": "manager", "type": "user", "label": "客户经理"},
            {"key": "notes", "type": "textarea", "label": "备注"},
            {"key": "size_band", "type": "formula", "label": "规模", "expression": "employees * 2",
             "result_type": "number"},
        ]},
        {"key": "order", "label": "订单", "title_field": "no", "fields": [
            {"key": "no", "type": "text", "label": "订单号", "unique": True, "required": True},
            {"key": "customer", "type": "lookup", "label": "客户", "target": "customer"},
            {"key": "amount", "type": "currency", "label": "金额"},
        ]},
    ],
    "permissions": [
        {"role": "clerk", "entity": "customer", "create": True, "read": "own", "update": "own",
         "hidden": ["revenue"], "readonly": ["level"]},
        {"role": "clerk", "entity": "order", "create": True, "read": "own"},
        {"role": "entry", "entity": "customer", "create": True, "read": "own"},
    ],
}


def imp_doc() -> dict:
    return copy.deepcopy(IMP)


def multipart(data: bytes, filename: str, form: dict) -> tuple[bytes, str]:
    """A multipart body built here: the test client's own encoder leaves a temporary file open."""
    boundary = "jimu-test-" + uuid.uuid4().hex
    out = io.BytesIO()
    for key, value in form.items():
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{text}\r\n'.encode())
    out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
              f"Content-Type: application/octet-stream\r\n\r\n".encode())
    out.write(data)
    out.write(f"\r\n--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def upload(client_api, entity: str, data: bytes, filename: str = "data.csv", app: str = "imp", **form):
    body, content_type = multipart(data, filename, form)
    resp = client_api.client.post(f"/api/v1/apps/{app}/{entity}/import", data=body,
                                  headers=client_api._headers(), content_type=content_type)
    return resp.status_code, resp.get_json(silent=True)


def rows(engine_or_app, entity: str = "customer", app: str = "imp") -> list[dict]:
    svc = engine_or_app.extensions["jimu"] if hasattr(engine_or_app, "extensions") else engine_or_app
    with svc.engine.connect() as conn:
        table = svc.catalog.get(conn, app).tables[entity]
        return [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]


def count(svc, entity: str = "customer", app: str = "imp") -> int:
    with svc.engine.connect() as conn:
        table = svc.catalog.get(conn, app).tables[entity]
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
