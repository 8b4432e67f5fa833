"""Helpers of the page tests: a signed-in browser-like client (session cookie + CSRF token)."""
from __future__ import annotations

import re

from tests.conftest import make_user

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class PageClient:
    def __init__(self, client, csrf: str):
        self.client = client
        self.csrf = csrf

    def get(self, path, **kw):
        return self.client.get(path, **kw)

    def post(self, path, data=None, **kw):
        data = dict(data or {})
        data.setdefault("csrf_token", self.csrf)
        return self.client.post(path, data=data, **kw)

    def json(self, method, path, body=None):
        resp = self.client.open(path, method=method, json=body, headers={"X-CSRF-Token": self.csrf})
        return resp.status_code, resp.get_json(silent=True)


def csrf_of(html: str) -> str:
    return CSRF_RE.search(html).group(1)


def sign_in(flask_app, name: str = "admin", role: str = "admin", **kw) -> PageClient:
    user = make_user(flask_app, name, role, **kw)
    client = flask_app.test_client()
    token = csrf_of(client.get("/login").text)
    resp = client.post("/login", data={"username": name, "password": user["password"], "csrf_token": token})
    assert resp.status_code == 302, resp.text
    return PageClient(client, token)


CRM = {
    "app": "crm", "label": "客户管理", "roles": ["agent"],
    "entities": [
        {"key": "customer", "label": "客户", "title_field": "name", "fields": [
            {"key": "name", "type": "text", "label": "名称", "required": True},
            {"key": "level", "type": "select", "label": "等级",
             "options": [{"value": "vip", "label": "贵宾"}, {"value": "normal", "label": "普通"}]},
            {"key": "cost", "type": "currency", "label": "成本"},
        ]},
        {"key": "ticket", "label": "工单", "title_field": "subject", "fields": [
            {"key": "subject", "type": "text", "label": "主题", "required": True},
            {"key": "customer", "type": "lookup", "label": "客户", "target": "customer"},
            {"key": "channel", "type": "select", "label": "渠道", "options": ["phone", "web"]},
            {"key": "phone", "type": "phone", "label": "电话", "required_if": "channel == 'phone'"},
            {"key": "tags", "type": "multiselect", "label": "标签", "options": ["a", "b"]},
            {"key": "vip", "type": "boolean", "label": "VIP"},
            {"key": "due", "type": "date", "label": "截止"},
        ]},
    ],
    "forms": [{"key": "intake", "entity": "ticket", "layout": [
        {"section": "基本信息", "columns": 2, "fields": ["subject", "customer", "channel", "phone"]},
        {"section": "更多", "columns": 1, "fields": ["tags", "vip", "due"]}]}],
    "permissions": [
        {"role": "agent", "entity": "customer", "create": True, "read": "own", "update": "own", "hidden": ["cost"]},
        {"role": "agent", "entity": "ticket", "create": True, "read": "own", "update": "own"},
    ],
}
