"""Reports and dashboards over REST: JSON/CSV/XLSX/SVG, readable rows only, export of lists."""
from __future__ import annotations

import copy
import io

import openpyxl
import pytest

APP = {
    "app": "svc",
    "label": "服务",
    "roles": ["agent", "manager"],
    "entities": [{"key": "ticket", "label": "工单", "title_field": "subject", "fields": [
        {"key": "subject", "type": "text", "label": "主题"},
        {"key": "severity", "type": "select", "label": "级别", "options": ["low", "high"]},
        {"key": "cost", "type": "currency", "label": "成本"},
        {"key": "score", "type": "number", "label": "NPS"},
    ]}],
    "reports": [
        {"key": "by_severity", "label": "按级别", "entity": "ticket", "group_by": ["severity"],
         "measures": [{"agg": "count"}, {"agg": "sum", "field": "cost"}], "chart": "bar"},
        {"key": "nps", "kind": "kpi", "entity": "ticket", "measure": {"nps": "score"}},
        {"key": "by_cost", "entity": "ticket", "group_by": ["cost"], "measures": [{"agg": "count"}]},
    ],
    "dashboards": [{"key": "service", "label": "服务看板", "widgets": [{"report": "by_severity", "width": 6},
                                                                   {"report": "nps", "width": 3}]}],
    "permissions": [
        {"role": "agent", "entity": "ticket", "create": True, "read": "own", "update": "own", "export": "own",
         "hidden": ["cost"]},
        {"role": "manager", "entity": "ticket", "create": True, "read": "all", "update": "all", "export": "all"},
    ],
}


@pytest.fixture
def svc(api, make_app, login_as):
    make_app(copy.deepcopy(APP))
    agent = login_as("agent1", app_roles={"svc": ["agent"]})
    manager = login_as("boss", app_roles={"svc": ["manager"]})
    rows = [("a", "low", "10", 10), ("b", "high", "=HYPERLINK(\"http://x\")", 9)]
    st, _ = agent.post("/apps/svc/ticket", {"subject": "我的", "severity": "high", "score": 3})
    assert st == 201
    for subject, sev, _cost, score in rows:
        st, body = manager.post("/apps/svc/ticket", {"subject": subject, "severity": sev, "cost": "5", "score": score})
        assert st == 201, body
    return api, agent, manager


def test_a_report_counts_only_readable_rows(svc):
    _, agent, manager = svc
    st, all_rows = manager.get("/apps/svc/reports/by_severity")
    assert st == 200
    assert {r["severity"]: r["count"] for r in all_rows["rows"]} == {"low": 1, "high": 2}
    assert all_rows["totals"]["count"] == 3
    st, body = agent.get("/apps/svc/reports/by_severity")
    assert st == 403   # the report sums a field hidden from agents
    st, mine = agent.get("/apps/svc/reports/nps")
    assert st == 200
    st, everyone = manager.get("/apps/svc/reports/nps")
    assert mine["rows"] != everyone["rows"]


def test_report_formats(svc):
    _, _, manager = svc
    client = manager.client
    headers = {"Authorization": f"Bearer {manager.token}"}
    resp = client.get("/api/v1/apps/svc/reports/by_severity?format=csv", headers=headers)
    assert resp.status_code == 200 and resp.data.startswith(b"\xef\xbb\xbf")
    resp = client.get("/api/v1/apps/svc/reports/by_severity?format=svg", headers=headers)
    assert resp.status_code == 200 and resp.data.lstrip().startswith(b"<svg") and b'role="img"' in resp.data
    resp = client.get("/api/v1/apps/svc/reports/by_severity?format=xlsx", headers=headers)
    wb = openpyxl.load_workbook(io.BytesIO(resp.data))
    assert wb.active.max_row == 3
    assert client.get("/api/v1/apps/svc/reports/nope", headers=headers).status_code == 404
    assert client.get("/api/v1/apps/svc/reports/by_severity?format=pdf", headers=headers).status_code == 422


def test_dashboard_json(svc):
    _, _, manager = svc
    st, dash = manager.get("/apps/svc/dashboards/service")
    assert st == 200 and [w["report"] for w in dash["widgets"]] == ["by_severity", "nps"]
    assert manager.get("/apps/svc/dashboards/nope")[0] == 404


def test_list_export_is_inert_and_obeys_permissions(svc):
    api, agent, manager = svc
    st, rec = manager.post("/apps/svc/ticket", {"subject": "=HYPERLINK(\"http://x\")", "severity": "low"})
    headers = {"Authorization": f"Bearer {manager.token}"}
    resp = manager.client.get("/api/v1/apps/svc/ticket?format=csv", headers=headers)
    text = resp.data.decode("utf-8-sig")
    assert "'=HYPERLINK" in text
    resp = manager.client.get("/api/v1/apps/svc/ticket?format=xlsx", headers=headers)
    ws = openpyxl.load_workbook(io.BytesIO(resp.data)).active
    cells = [c.value for row in ws.iter_rows() for c in row]
    assert '=HYPERLINK("http://x")' in cells
    assert all(c.data_type != "f" for row in ws.iter_rows() for c in row)
    agent_headers = {"Authorization": f"Bearer {agent.token}"}
    resp = agent.client.get("/api/v1/apps/svc/ticket?format=csv", headers=agent_headers)
    text = resp.data.decode("utf-8-sig")
    assert "我的" in text and "HYPERLINK" not in text and "cost" not in text and "成本" not in text
