"""An integrator builds a small CRM through the REST API, as an outside program would.

    python examples/build_app_over_rest.py                  # against a throwaway in-process instance
    JIMU_URL=http://127.0.0.1:5000 JIMU_TOKEN=... python examples/build_app_over_rest.py

Creates an app with customers and tickets, publishes it, adds records, lists them with a filter,
and adds a field in a second revision — the customer's data stays.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

APP = {
    "app": "example_crm",
    "label": "示例客户管理",
    "entities": [
        {"key": "customer", "label": "客户", "title_field": "name", "fields": [
            {"key": "name", "type": "text", "label": "名称", "required": True},
            {"key": "industry", "type": "select", "label": "行业",
             "options": [{"value": "manufacturing", "label": "制造业"}, {"value": "retail", "label": "零售"}]},
            {"key": "revenue", "type": "currency", "label": "年收入"},
        ]},
        {"key": "ticket", "label": "工单", "title_field": "subject", "fields": [
            {"key": "subject", "type": "text", "label": "主题", "required": True},
            {"key": "customer", "type": "lookup", "label": "客户", "target": "customer"},
        ]},
    ],
}


class Remote:
    def __init__(self, url: str, token: str):
        self.url, self.token = url.rstrip("/"), token

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + "/api/v1" + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


class InProcess:
    """A throwaway instance (SQLite in a temporary folder) reached through its HTTP interface."""

    def __init__(self):
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from runtime import users
        from web.app import create_app
        self.app = create_app({"JIMU_DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/example.db",
                               "SECRET_KEY": "example"})
        with self.app.extensions["jimu"].engine.begin() as conn:
            users.create_user(conn, "admin", "example-password", "admin")
            self.token = users.create_token(conn, users.find_user(conn, "admin").id)["token"]
        self.client = self.app.test_client()

    def call(self, method: str, path: str, body=None):
        resp = self.client.open("/api/v1" + path, method=method, json=body,
                                headers={"Authorization": f"Bearer {self.token}"})
        return resp.status_code, resp.get_json(silent=True)


def main() -> int:
    api = Remote(os.environ["JIMU_URL"], os.environ["JIMU_TOKEN"]) if os.environ.get("JIMU_URL") else InProcess()
    status, body = api.call("POST", "/apps", APP)
    assert status == 201, body
    status, plan = api.call("POST", "/apps/example_crm/publish", {})
    assert status == 200, plan
    print("published revision", plan["revision"], plan["summary"])
    status, customer = api.call("POST", "/apps/example_crm/customer",
                                {"name": "华东精密机械有限公司", "industry": "manufacturing", "revenue": "1250000.5"})
    assert status == 201, customer
    status, ticket = api.call("POST", "/apps/example_crm/ticket", {"subject": "设备无法启动", "customer": customer["id"]})
    assert status == 201, ticket
    status, page = api.call("GET", "/apps/example_crm/customer?filter=industry%20%3D%3D%20'manufacturing'")
    print("manufacturing customers:", [c["name"] for c in page["items"]])
    status, draft = api.call("GET", "/apps/example_crm/draft")
    draft["entities"][0]["fields"].append({"key": "region", "type": "select", "label": "区域", "options": ["east", "north"]})
    status, _ = api.call("PUT", "/apps/example_crm/draft", draft)
    status, plan = api.call("POST", "/apps/example_crm/publish", {})
    print("published revision", plan["revision"], "steps:", plan["steps"])
    status, again = api.call("GET", f"/apps/example_crm/customer/{customer['id']}")
    assert again["revenue"] == "1250000.50" and again["region"] is None
    print("the customer kept its data:", again["name"], again["revenue"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
