"""The builder's section editors through the Flask client: the rules, workflow and report editor
pages render for admins and builders and refuse plain users; labels stay inert text; the report
preview endpoint validates specs and obeys the viewer's permissions."""
from __future__ import annotations

import copy
import json
import re

import pytest

from .pages_support import sign_in

XSS = "<img src=x onerror=alert(1)>"
APP = {
    "app": "svc", "label": "服务", "roles": ["agent", "manager"],
    "entities": [{"key": "ticket", "label": XSS, "title_field": "subject", "fields": [
        {"key": "subject", "type": "text", "label": XSS},
        {"key": "severity", "type": "select", "label": "级别", "options": [{"value": "low", "label": XSS}, "high"]},
        {"key": "cost", "type": "currency", "label": "成本"},
        {"key": "score", "type": "number", "label": "分"},
    ]}],
    "rules": [{"key": "sev_score", "kind": "score", "entity": "ticket", "target": "score", "label": XSS,
               "components": [{"condition": "severity == 'high'", "points": 20}]}],
    "reports": [{"key": "by_severity", "label": XSS, "entity": "ticket", "group_by": ["severity"],
                 "measures": [{"agg": "count"}], "chart": "bar"}],
    "permissions": [
        {"role": "agent", "entity": "ticket", "create": True, "read": "own", "update": "own", "hidden": ["cost"]},
        {"role": "manager", "entity": "ticket", "create": True, "read": "all", "update": "all"},
    ],
}
PAGES = ("/builder/svc/edit/rules", "/builder/svc/edit/flows", "/builder/svc/edit/reports")


@pytest.fixture
def svc(api, make_app, login_as):
    make_app(copy.deepcopy(APP))
    agent = login_as("agent1", app_roles={"svc": ["agent"]})
    manager = login_as("boss", app_roles={"svc": ["manager"]})
    assert agent.post("/apps/svc/ticket", {"subject": "mine", "severity": "high"})[0] == 201
    for subject, sev in (("a", "low"), ("b", "high")):
        assert manager.post("/apps/svc/ticket", {"subject": subject, "severity": sev, "cost": "5"})[0] == 201
    return api, agent, manager


def editor_data(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="editor-data">(.*?)</script>', html, re.S).group(1))


def test_editor_pages_render_for_admins_and_builders(flask_app, svc):
    for who, role in (("admin", "admin"), ("maker", "builder")):
        pc = sign_in(flask_app, who, role)
        for path in PAGES:
            resp = pc.get(path)
            assert resp.status_code == 200, (who, path)
            assert 'id="editor-data"' in resp.text and "X-CSRF" not in resp.text
        data = editor_data(pc.get("/builder/svc/edit/rules").text)
        assert data["app"] == "svc" and data["published"] is True
        assert data["draft"]["rules"][0]["key"] == "sev_score"
        fields = {f["key"]: f for f in data["entities"][0]["fields"]}
        assert fields["severity"]["options"][0] == {"value": "low", "label": XSS}
        assert "bar" in editor_data(pc.get("/builder/svc/edit/reports").text)["charts"]
    app_page = sign_in(flask_app).get("/builder/svc").text
    assert "/builder/svc/edit/rules" in app_page and "/builder/svc/edit/reports" in app_page


def test_editor_pages_refuse_plain_users_and_strangers(flask_app, svc):
    pc = sign_in(flask_app, "plain", "user", app_roles={"svc": ["manager"]})
    for path in PAGES:
        resp = pc.get(path)
        assert resp.status_code == 403 and "sev_score" not in resp.text
    anon = flask_app.test_client()
    for path in PAGES:
        resp = anon.get(path)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_labels_are_inert_text(flask_app, svc):
    pc = sign_in(flask_app)
    for path in PAGES:
        html = pc.get(path).text
        assert "<img src=x" not in html               # JSON in a script tag escapes < as \u003c
        assert "\\u003cimg src=x onerror=alert(1)\\u003e" in html


def test_preview_runs_a_spec_over_readable_rows(flask_app, svc):
    _, agent, manager = svc
    spec = {"entity": "ticket", "label": XSS, "group_by": ["severity"], "measures": [{"agg": "count"}], "chart": "bar"}
    st, out = manager.post("/apps/svc/reports/preview", spec)
    assert st == 200, out
    assert {r["severity"]: r["count"] for r in out["result"]["rows"]} == {"low": 1, "high": 2}
    assert out["svg"].startswith("<svg") or "<svg" in out["svg"][:200]
    assert "<img" not in out["svg"] and out["chart"] == "bar"
    st, mine = agent.post("/apps/svc/reports/preview", {"report": spec})          # own rows only
    assert st == 200 and mine["result"]["totals"]["count"] == 1
    st, out = agent.post("/apps/svc/reports/preview", {**spec, "measures": [{"agg": "sum", "field": "cost"}]})
    assert st == 403                                                              # a hidden field
    st, out = agent.post("/apps/svc/reports/preview", {**spec, "filter": "severity == "})
    assert st == 422 and out["error"]["details"][0]["location"] == "filter"
    assert isinstance(out["error"]["details"][0].get("position"), int)
    st, out = manager.post("/apps/svc/reports/preview", {**spec, "entity": "nope"})
    assert st == 422 and out["error"]["details"][0]["location"] == "entity"
    st, out = manager.post("/apps/svc/reports/preview", [1, 2])
    assert st == 422


def test_preview_refuses_users_without_the_entity_and_needs_csrf(flask_app, svc, login_as):
    nobody = login_as("nobody", app_roles={})
    st, _ = nobody.post("/apps/svc/reports/preview", {"entity": "ticket", "measures": [{"agg": "count"}]})
    assert st == 403
    pc = sign_in(flask_app)
    resp = pc.client.post("/api/v1/apps/svc/reports/preview", json={"entity": "ticket"})   # no X-CSRF-Token
    assert resp.status_code in (400, 403)
    st, out = pc.json("POST", "/api/v1/apps/svc/reports/preview", {"entity": "ticket", "measures": [{"agg": "count"}]})
    assert st == 200 and out["result"]["totals"]["count"] == 3
