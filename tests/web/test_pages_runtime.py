"""The generated app's pages through the Flask client, on SQLite and PostgreSQL: the form and its
errors, the record page (timeline, related records), list (filter, sort, paging, saved views,
bulk edit), kanban, tasks, and permissions on every page."""
from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime

from .pages_support import CRM, sign_in


def test_new_record_form_shows_errors_next_to_fields_and_keeps_input(flask_app, make_app):
    make_app(copy.deepcopy(CRM))
    pc = sign_in(flask_app)
    html = pc.get("/apps/crm/ticket/new").text
    # the layout of the first form: sections, columns, fields in order
    assert html.index('id="fld-subject"') < html.index('id="fld-customer"') < html.index('id="fld-tags-')\
        if 'id="fld-tags-' in html else True
    assert 'class="section cols-2"' in html and "基本信息" in html
    for key in ("subject", "customer", "channel", "phone", "vip", "due"):
        assert f'<label for="fld-{key}">' in html
    assert "<legend>标签" in html                                 # checkboxes named by their fieldset
    resp = pc.post("/apps/crm/ticket/new", {"f_subject": "", "f_channel": "phone", "f_phone": "", "f_due": "31/02"})
    assert resp.status_code == 422
    html = resp.text
    for key in ("subject", "phone", "due"):
        assert re.search(rf'id="fld-{key}"[^>]*aria-invalid="true"|aria-invalid="true"[^>]*id="fld-{key}"', html) \
            or re.search(rf'id="fld-{key}" name="f_{key}"[^>]*aria-invalid="true"', html), key
        assert re.search(rf'id="fld-{key}-err" role="alert">[^<]+', html), key
    assert '<option value="phone" selected>' in html               # what the user chose is kept
    resp = pc.post("/apps/crm/ticket/new", {"f_subject": "无法登录", "f_channel": "web", "f_tags": ["a", "b"],
                                            "f_tags__present": "1", "f_vip": "true", "f_due": "2026-03-01"})
    assert resp.status_code == 302
    rid = int(resp.headers["Location"].rsplit("/", 1)[1])
    status, rec = pc.json("GET", f"/api/v1/apps/crm/ticket/{rid}")
    assert rec["tags"] == ["a", "b"] and rec["vip"] is True and rec["due"] == "2026-03-01" and rec["phone"] is None


def test_record_page_edits_and_shows_timeline_and_related_records(flask_app, api, make_app):
    make_app(copy.deepcopy(CRM))
    st, cust = api.post("/apps/crm/customer", {"name": "华东精密", "level": "vip"})
    for i in range(12):
        api.post("/apps/crm/ticket", {"subject": f"工单{i:02d}", "customer": cust["id"], "channel": "web"})
    st, other = api.post("/apps/crm/customer", {"name": "北辰零售"})
    api.post("/apps/crm/ticket", {"subject": "别人的工单", "customer": other["id"]})
    pc = sign_in(flask_app)
    html = pc.get(f"/apps/crm/customer/{cust['id']}").text
    related = html[html.index('class="related"'):html.index('class="timeline"')]
    assert related.count("工单") >= 10 and "工单11" in related and "工单01" not in related   # latest 10
    assert "别人的工单" not in related and "· 12" in related
    assert "filter=customer+%3D%3D+" in related                   # link to all of them
    resp = pc.post(f"/apps/crm/customer/{cust['id']}", {"_version": "1", "f_name": "华东精密机械", "f_level": "normal"})
    assert resp.status_code == 302
    html = pc.get(f"/apps/crm/customer/{cust['id']}").text
    timeline = html[html.index('class="timeline"'):]
    assert "华东精密机械" in timeline and "贵宾" in timeline and "普通" in timeline
    # a stale version is a conflict shown on the page
    resp = pc.post(f"/apps/crm/customer/{cust['id']}", {"_version": "1", "f_name": "旧的"})
    assert resp.status_code == 409 and 'role="alert"' in resp.text
    # a ticket shows its customer by title
    tid = pc.json("GET", "/api/v1/apps/crm/ticket?sort=id&page_size=1")[1]["items"][0]["id"]
    assert "华东精密机械" in pc.get(f"/apps/crm/ticket/{tid}").text
    resp = pc.post(f"/apps/crm/customer/{cust['id']}/delete")
    assert resp.status_code == 302 and "关联" in pc.get(resp.headers["Location"]).text   # refused, linked


def test_list_filter_sort_paging_saved_views_and_bulk_edit(flask_app, api, make_app):
    make_app(copy.deepcopy(CRM))
    for i in range(60):
        st, _ = api.post("/apps/crm/customer", {"name": f"客户{i:02d}", "level": "vip" if i % 3 == 0 else "normal"})
    pc = sign_in(flask_app)
    html = pc.get("/apps/crm/customer").text
    assert "60 条记录" in html and "第 1 / 2 页" in html and 'rel="next"' in html
    html = pc.get("/apps/crm/customer?filter=level == 'vip'&sort=name").text
    assert "20 条记录" in html and html.index("客户00") < html.index("客户03")
    assert 'aria-sort="ascending"' in html
    html = pc.get("/apps/crm/customer?filter=level == ").text
    assert re.search(r'id="filter-error" role="alert">[^<]*筛选条件有误', html)
    html = pc.get("/apps/crm/customer?q=客户05").text
    assert "1 条记录" in html
    # saved views are per user and keep the query
    resp = pc.post("/apps/crm/customer/views", {"name": "贵宾", "filter": "level == 'vip'", "sort": "-name"})
    assert resp.status_code == 302
    html = pc.get("/apps/crm/customer").text
    assert re.search(r'href="\?filter=level\+%3D%3D\+%27vip%27&amp;sort=-name">贵宾</a>', html)
    other = sign_in(flask_app, "bob", "admin")
    assert "贵宾</a>" not in other.get("/apps/crm/customer").text
    # bulk edit: all or nothing
    ids = [r["id"] for r in pc.json("GET", "/api/v1/apps/crm/customer?filter=level == 'normal'&page_size=5")[1]["items"]]
    resp = pc.post("/apps/crm/customer/bulk", {"ids": ids, "field": "level", "value": "vip"})
    assert resp.status_code == 302
    assert pc.json("GET", "/api/v1/apps/crm/customer?filter=level == 'vip'")[1]["total"] == 25
    resp = pc.post("/apps/crm/customer/bulk", {"ids": ids[:2], "field": "level", "value": "nope"})
    assert "未做任何修改" in pc.get(resp.headers["Location"]).text
    assert pc.json("GET", "/api/v1/apps/crm/customer?filter=level == 'vip'")[1]["total"] == 25


def test_board_groups_by_a_select_field(flask_app, api, make_app):
    make_app(copy.deepcopy(CRM))
    api.post("/apps/crm/ticket", {"subject": "电话来的", "channel": "phone", "phone": "13800001111"})
    api.post("/apps/crm/ticket", {"subject": "没渠道"})
    pc = sign_in(flask_app)
    html = pc.get("/apps/crm/ticket/board").text
    assert 'data-value="phone"' in html and 'data-value="web"' in html and "（空）" in html
    assert html.index('data-value="phone"') < html.index("电话来的") < html.index('data-value="web"')
    assert 'draggable="true"' in html and 'id="board-data"' in html
    assert pc.get("/apps/crm/ticket/board?by=subject").status_code == 404
    assert pc.get("/apps/crm/customer/board?by=level").status_code == 200


def test_permissions_apply_on_every_page(flask_app, api, make_app):
    make_app(copy.deepcopy(CRM))
    st, theirs = api.post("/apps/crm/customer", {"name": "管理员的客户", "cost": "99.00"})
    agent = sign_in(flask_app, "agent1", "user", app_roles={"crm": ["agent"]})
    resp = agent.post("/apps/crm/customer/new", {"f_name": "我的客户"})
    assert resp.status_code == 302
    mine = int(resp.headers["Location"].rsplit("/", 1)[1])
    html = agent.get("/apps/crm/customer").text
    assert "我的客户" in html and "管理员的客户" not in html and "成本" not in html
    assert agent.get(f"/apps/crm/customer/{theirs['id']}").status_code == 404
    html = agent.get(f"/apps/crm/customer/{mine}").text
    assert "成本" not in html and 'name="f_cost"' not in html
    assert "成本" not in agent.get("/apps/crm/customer/new").text
    assert "管理员的客户" not in agent.get("/apps/crm/customer/board").text
    assert "管理员的客户" not in agent.get("/apps/crm/ticket/new").text         # lookup picker
    assert agent.get("/builder").status_code == 403
    assert agent.get("/builder/crm").status_code == 403
    outsider = sign_in(flask_app, "eve", "user")
    assert outsider.get("/apps/crm/customer").status_code == 403
    assert "客户管理" not in outsider.get("/").text


def test_tasks_page_lists_my_open_tasks(flask_app, make_app):
    from runtime import system_tables as st
    from tests.conftest import make_user
    make_app(copy.deepcopy(CRM))
    me = make_user(flask_app, "tina", "user")
    other = make_user(flask_app, "olga", "user")
    with flask_app.extensions["jimu"].engine.begin() as conn:
        now = datetime.now(UTC)
        conn.execute(st.tasks.insert(), [
            {"kind": "task", "title": "回访 <客户>", "assignee_id": me["id"], "status": "open", "created_at": now,
             "payload": "{}", "app": "crm", "entity": "customer", "record_id": 1},
            {"kind": "approval", "title": "退款审批", "assignee_id": me["id"], "status": "open", "created_at": now,
             "payload": "{}", "app": None, "entity": None, "record_id": None},
            {"kind": "task", "title": "别人的任务", "assignee_id": other["id"], "status": "open", "created_at": now,
             "payload": "{}", "app": None, "entity": None, "record_id": None}])
    pc = sign_in(flask_app, "tina", "user")
    html = pc.get("/tasks").text
    assert "回访 &lt;客户&gt;" in html and "退款审批" in html and "别人的任务" not in html
    assert 'href="/apps/crm/customer/1"' in html and 'data-action="approve"' in html
    assert "2 项待办任务和审批" in pc.get("/").text


FLOW_APP = {"app": "flowy", "label": "流程", "entities": [{"key": "ticket", "label": "工单", "title_field": "subject", "fields": [
    {"key": "subject", "type": "text", "label": "主题", "required": True},
    {"key": "status", "type": "select", "label": "状态", "options": ["new", "doing", "done"]}]}],
    "flows": [{"key": "handling", "entity": "ticket", "state_field": "status", "initial": "new",
               "states": [{"key": "new", "label": "待受理"}, {"key": "doing", "label": "处理中"},
                          {"key": "done", "label": "已解决", "final": True}],
               "transitions": [{"key": "start", "label": "开始处理", "from": ["new"], "to": "doing"},
                               {"key": "finish", "label": "解决", "from": "doing", "to": "done"}]}]}


def test_workflow_state_on_board_form_list_and_record_page(flask_app, api, make_app):
    make_app(copy.deepcopy(FLOW_APP))
    pc = sign_in(flask_app)
    html = pc.get("/apps/flowy/ticket/new").text
    assert 'name="f_status"' not in html and "待受理" in html          # written only by transitions
    resp = pc.post("/apps/flowy/ticket/new", {"f_subject": "开票"})
    rid = int(resp.headers["Location"].rsplit("/", 1)[1])
    html = pc.get(f"/apps/flowy/ticket/{rid}").text
    assert 'data-transition="start"' in html and 'data-transition="finish"' not in html and "开始处理" in html
    assert "待受理" in pc.get("/apps/flowy/ticket").text
    html = pc.get("/apps/flowy/ticket/board").text
    board = json.loads(re.search(r'id="board-data">(.*?)</script>', html, re.S).group(1))
    assert board["flow"] is True and board["field"] == "status"
    assert [c["label"] for c in board["columns"]] == ["待受理", "处理中", "已解决"]
    assert {"key": "finish", "label": "解决", "from": ["doing"], "to": "done"} in board["transitions"]
    # what the board's script does on a drop, and the timeline afterwards
    assert pc.json("POST", f"/api/v1/apps/flowy/ticket/{rid}/transitions/start", {})[0] == 200
    assert pc.json("POST", f"/api/v1/apps/flowy/ticket/{rid}/transitions/start", {})[0] == 409
    timeline = pc.get(f"/apps/flowy/ticket/{rid}").text.split('class="timeline"')[1]
    assert "待受理" in timeline and "处理中" in timeline
