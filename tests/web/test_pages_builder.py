"""Builder pages and the expression checker, through the Flask client: create an app, add an
entity, the designer's data (every field type), revisions with diff and restore, spec sections
listed read-only with their errors, and live checking of conditions."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from engines.field_types import REGISTRY

from .pages_support import CRM, sign_in


def designer_data(html: str) -> dict:
    raw = re.search(r'<script type="application/json" id="designer-data">(.*?)</script>', html, re.S).group(1)
    return json.loads(raw)


def test_create_app_add_entity_and_open_the_designer(flask_app):
    pc = sign_in(flask_app)
    resp = pc.post("/builder", {"app": "Bad Key", "label": "坏的"})
    assert resp.status_code == 422 and 'role="alert"' in resp.text
    resp = pc.post("/builder", {"app": "service", "label": "服务"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/builder/service"
    html = pc.get("/builder/service").text
    assert "服务" in html and "暂无实体" in html and 'id="publish-btn"' in html
    resp = pc.post("/builder/service/entities", {"label": "工单", "key": "ticket"})
    assert resp.headers["Location"] == "/builder/service/ticket"
    data = designer_data(pc.get("/builder/service/ticket").text)
    assert {t["name"] for t in data["types"]} == set(REGISTRY)            # the whole palette
    assert data["draft"]["forms"][0]["layout"][0]["fields"] == ["name"]
    assert data["unpublished"] is True and "select" in data["reserved"]
    assert data["urls"]["draft"] == "/api/v1/apps/service/draft"
    resp = pc.post("/builder/service/entities", {"label": "Board", "key": "board"})   # a URL word
    assert "未能添加实体" in pc.get(resp.headers["Location"]).text
    assert pc.get("/builder/service/nope").status_code == 404


def test_designer_saves_and_publishes_through_the_api(flask_app):
    pc = sign_in(flask_app)
    pc.post("/builder", {"app": "service", "label": "服务"})
    pc.post("/builder/service/entities", {"label": "工单", "key": "ticket"})
    draft = designer_data(pc.get("/builder/service/ticket").text)["draft"]
    draft["entities"][0]["fields"].append({"key": "phone", "type": "phone", "label": "电话",
                                            "required_if": "name == 'x'"})
    draft["forms"][0]["layout"].append({"section": "联系", "columns": 2, "fields": ["phone"]})
    st, saved = pc.json("PUT", "/api/v1/apps/service/draft", draft)
    assert st == 200 and all(f.get("id") for f in saved["entities"][0]["fields"])
    st, plan = pc.json("GET", "/api/v1/apps/service/plan")
    assert st == 200 and plan["summary"]["tables_created"] == 1
    st, out = pc.json("POST", "/api/v1/apps/service/publish", {"message": "第一版"})
    assert st == 200 and out["revision"] == 1
    html = pc.get("/apps/service/ticket/new").text
    assert 'class="section cols-2"' in html and "联系" in html
    data = designer_data(pc.get("/builder/service/ticket").text)
    assert data["unpublished"] is False and len(data["published_ids"]) == 2


def test_revisions_diff_and_restore(flask_app, make_app):
    make_app(copy.deepcopy(CRM))
    pc = sign_in(flask_app)
    st, draft = pc.json("GET", "/api/v1/apps/crm/draft")
    draft["entities"][0]["fields"] = [f for f in draft["entities"][0]["fields"] if f["key"] != "cost"]
    draft["entities"][0]["fields"].append({"key": "region", "type": "text", "label": "地区"})
    draft["permissions"][0]["hidden"] = []
    assert pc.json("PUT", "/api/v1/apps/crm/draft", draft)[0] == 200
    assert "有未发布的更改" in pc.get("/builder/crm").text
    assert pc.json("POST", "/api/v1/apps/crm/publish", {})[0] == 200
    html = pc.get("/builder/crm/revisions/2").text
    assert "新增字段" in html and "region" in html and "停用字段（数据保留）" in html and "cost" in html
    html = pc.get("/builder/crm").text
    assert '/builder/crm/revisions/1/restore' in html and '/builder/crm/revisions/2/restore' not in html
    resp = pc.post("/builder/crm/revisions/1/restore")
    assert resp.status_code == 302
    assert "版本 1 已恢复为版本 3" in pc.get("/builder/crm").text
    assert 'name="f_cost"' in pc.get("/apps/crm/customer/new").text


def test_spec_sections_are_listed_with_their_errors(flask_app, make_app):
    doc = copy.deepcopy(CRM)
    doc["reports"] = [{"key": "by_level", "entity": "customer", "group_by": ["level"], "measures": [{"agg": "count"}]}]
    make_app(doc)
    pc = sign_in(flask_app)
    html = pc.get("/builder/crm").text
    for title in ("规则", "流程", "报表", "仪表板", "权限"):
        assert f">{title} <span" in html
    assert "by_level" in html and "&#34;group_by&#34;" in html or "&quot;group_by&quot;" in html or '"group_by"' in html


def test_expression_check_uses_the_designers_unsaved_fields(flask_app, make_app):
    make_app(copy.deepcopy(CRM))
    pc = sign_in(flask_app)
    body = {"app": "crm", "entity": "ticket", "expression": "channel == 'phone' and not ISBLANK(phone)", "expect": "bool"}
    st, out = pc.json("POST", "/api/v1/expressions/check", body)
    assert st == 200 and out == {"ok": True, "error": None, "position": None, "result_type": "bool"}
    st, out = pc.json("POST", "/api/v1/expressions/check", {**body, "expression": "chanel == 'phone'"})
    assert out["ok"] is False and out["position"] == 0 and "channel" in out["error"]
    st, out = pc.json("POST", "/api/v1/expressions/check", {**body, "expression": "channel == "})
    assert out["ok"] is False and isinstance(out["position"], int)
    fields = [{"key": "level2", "type": "number", "label": "x"}]
    st, out = pc.json("POST", "/api/v1/expressions/check", {**body, "expression": "level2 > 3", "fields": fields})
    assert out["ok"] is True
    st, out = pc.json("POST", "/api/v1/expressions/check", {**body, "expression": "1 + 1"})
    assert out["ok"] is False                                    # a condition must be true/false
    assert pc.json("POST", "/api/v1/expressions/check", {"app": "crm"})[0] == 422
    # a user checks against what they may read of the published app; the draft is the builders'
    agent = sign_in(flask_app, "agent1", "user", app_roles={"crm": ["agent"]})
    assert agent.json("POST", "/api/v1/expressions/check", {**body, "entity": "customer", "expression": "name == 'a'"})[0] == 403
    pub = {"app": "crm", "entity": "customer", "expect": "bool", "source": "published"}
    assert agent.json("POST", "/api/v1/expressions/check", {**pub, "expression": "name == 'a'"})[1]["ok"] is True
    assert agent.json("POST", "/api/v1/expressions/check", {**pub, "expression": "cost > 1"})[1]["ok"] is False


def _messages(pattern: str, globs: list[str]) -> set[str]:
    root = Path(__file__).resolve().parents[2] / "web"
    rx = re.compile(pattern)
    out = set()
    for g in globs:
        for path in root.glob(g):
            for m in rx.finditer(path.read_text("utf-8")):
                out.add(next(x for x in m.groups() if x is not None))
    return out


def test_the_chinese_catalogue_is_complete():
    from web.i18n_zh import JS_KEYS, ZH
    py = _messages(r"""(?<![\w.])_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""",
                   ["templates/*.html", "pages*.py", "page_fields.py", "i18n.py"])
    js = _messages(r"""(?<![\w.])t\(\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")""", ["static/*.js"])
    assert sorted(m for m in py | js if m not in ZH) == []
    assert sorted(m for m in js if m not in JS_KEYS) == []
    assert all(k in ZH for k in JS_KEYS)
    for en, zh in ZH.items():
        assert re.findall(r"%\(\w+\)s", en) == re.findall(r"%\(\w+\)s", zh) or \
            sorted(re.findall(r"%\(\w+\)s", en)) == sorted(re.findall(r"%\(\w+\)s", zh)), en
