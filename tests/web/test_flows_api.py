"""Workflow over HTTP: transitions and their refusals, approvals, tasks, notifications and the
public survey page, on both back ends."""
from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from runtime import system_tables as st
from runtime.scheduler import Scheduler
from tests.runtime.flow_support import complaints_doc


@pytest.fixture
def crew(api, make_app, login_as):
    st_, body = api.post("/teams", {"key": "service", "label": "客服一组"})
    assert st_ == 201, body
    make_app(complaints_doc())
    li = login_as("li", teams=["service"], app_roles={"complaints": ["agent"]})
    zhao = login_as("zhao", teams=["service"], app_roles={"complaints": ["agent"]})
    wang = login_as("wang", app_roles={"complaints": ["supervisor"]})
    chen = login_as("chen", app_roles={"complaints": ["supervisor"]})
    return {"admin": api, "li": li, "zhao": zhao, "wang": wang, "chen": chen}


def _tick(flask_app):
    svc = flask_app.extensions["jimu"]
    return Scheduler(svc.engine, svc.catalog, svc.records, worker_id="test").tick()


def _kinds(api, rid):
    st_, tl = api.get(f"/apps/complaints/ticket/{rid}/timeline")
    assert st_ == 200
    return [(i["kind"], (i["details"] or {}).get("transition")) for i in reversed(tl["items"])]


def test_transitions_and_every_refusal(crew):
    li, zhao, wang, admin = crew["li"], crew["zhao"], crew["wang"], crew["admin"]
    st_, cust = li.post("/apps/complaints/customer", {"name": "北辰零售", "email": "ops@beichen.example.cn"})
    st_, t = li.post("/apps/complaints/ticket", {"subject": "退款未到账", "urgency": "medium"})
    assert st_ == 201 and t["status"] == "new" and t["_flow"]["state"] == "new"
    assert {s["key"] for s in t["_sla"]} == {"first_response", "resolution"}
    rid, path = t["id"], f"/apps/complaints/ticket/{t['id']}/transitions"

    # wrong state
    st_, body = li.post(f"{path}/resolve", {"values": {"resolution": "x"}})
    assert st_ == 409 and body["error"]["code"] == "transition_not_allowed"
    assert body["error"]["details"]["reason"] == "wrong_state"
    # only the role is wrong: 403
    st_, body = li.post(f"{path}/escalate", {})
    assert st_ == 403 and body["error"]["code"] == "forbidden" and body["error"]["details"]["roles"] == ["supervisor"]
    # unknown transition, unknown key, malformed body
    assert li.post(f"{path}/teleport", {})[0] == 409
    assert li.post(f"{path}/accept", {"comment": "x", "state": "closed"})[0] == 422
    assert li.post(f"{path}/accept", raw=b"{nope")[0] == 400
    assert li.post(f"{path}/accept", {"values": ["not", "an", "object"]})[0] == 422
    # somebody who cannot see the record gets a 404, as if it did not exist
    assert zhao.post(f"{path}/accept", {})[0] == 404
    # the state field is written only by transitions
    st_, body = li.patch(f"/apps/complaints/ticket/{rid}", {"status": "closed"})
    assert st_ == 422 and "status" in body["error"]["details"]

    st_, acc = li.post(f"{path}/accept", {"comment": "已联系客户"})
    assert st_ == 200 and acc["status"] == "in_progress" and acc["responded_at"] is not None
    assert acc["_version"] == t["_version"] + 1
    # required field missing, then the guard (a customer must be set), then a read-only value
    st_, body = li.post(f"{path}/resolve", {"comment": "done"})
    assert st_ == 409 and body["error"]["details"]["reason"] == "missing_required"
    assert body["error"]["details"]["fields"] == ["resolution"]
    st_, body = li.post(f"{path}/resolve", {"values": {"resolution": "已退款"}})
    assert st_ == 409 and body["error"]["details"]["reason"] == "guard_false"
    st_, body = li.post(f"{path}/resolve", {"values": {"resolution": "已退款", "severity": "low"}})
    assert st_ == 403
    st_, same = li.get(f"/apps/complaints/ticket/{rid}")
    assert same["status"] == "in_progress" and same["_version"] == acc["_version"] and same["resolution"] is None
    assert _kinds(admin, rid) == [("create", None), ("transition", "accept")]

    st_, res = li.post(f"{path}/resolve", {"comment": "已原路退回", "values": {"resolution": "已退款",
                                                                           "customer": cust["id"]}})
    assert st_ == 200 and res["status"] == "resolved" and res["resolution"] == "已退款"
    assert res["customer"] == cust["id"] and res["resolved_at"] is not None
    st_, tl = admin.get(f"/apps/complaints/ticket/{rid}/timeline")
    last = next(i for i in tl["items"] if i["kind"] == "transition")
    assert last["summary"] == "in_progress → resolved" and last["by"] == "li"
    assert last["details"]["from"] == "in_progress" and last["details"]["to"] == "resolved"
    assert last["details"]["comment"] == "已原路退回"
    # a supervisor may close; the agent may not
    assert li.post(f"{path}/close", {})[0] == 403
    st_, closed = wang.post(f"{path}/close", {})
    assert st_ == 200 and closed["status"] == "closed"
    st_, body = wang.post(f"{path}/reopen", {})
    assert st_ == 409 and body["error"]["details"]["reason"] == "wrong_state"


def test_approvals_tasks_and_notifications(crew, flask_app):
    li, wang, chen, admin = crew["li"], crew["wang"], crew["chen"], crew["admin"]
    st_, cust = li.post("/apps/complaints/customer", {"name": "华南物流"})
    st_, t = li.post("/apps/complaints/ticket", {"subject": "货物破损", "customer": cust["id"], "compensation": 200})
    path = f"/apps/complaints/ticket/{t['id']}/transitions"
    li.post(f"{path}/accept", {})
    li.post(f"{path}/resolve", {"values": {"resolution": "补发"}})

    st_, pending = li.post(f"{path}/refund", {"comment": "补偿 200 元"})
    assert st_ == 202 and pending["status"] == "resolved"
    assert pending["_approval"]["status"] == "pending" and pending["_approval"]["mode"] == "any"
    assert li.post(f"{path}/refund", {})[0] == 409            # already waiting
    assert li.get("/tasks")[1]["items"] == []
    st_, mine = wang.get("/tasks")
    approval = next(x for x in mine["items"] if x["kind"] == "approval")
    assert approval["transition"] == "refund" and approval["record_id"] == t["id"]
    assert li.post(f"/approvals/{approval['id']}/decide", {"decision": "approve"})[0] == 403
    assert wang.post(f"/approvals/{approval['id']}/decide", {"decision": "maybe"})[0] == 422
    assert wang.post(f"/tasks/{approval['id']}/complete", {})[0] == 409
    st_, out = wang.post(f"/approvals/{approval['id']}/decide", {"decision": "reject", "comment": "金额过高"})
    assert st_ == 200 and out["outcome"] == "rejected"
    assert li.get(f"/apps/complaints/ticket/{t['id']}")[1]["status"] == "resolved"
    assert chen.get("/tasks")[1]["items"] == []                # the other approver's task was withdrawn
    assert wang.post(f"/approvals/{approval['id']}/decide", {"decision": "approve"})[0] == 409

    li.post(f"{path}/refund", {"comment": "调整为 100 元", "values": {"compensation": 100}})
    task = chen.get("/tasks")[1]["items"][0]
    st_, out = chen.post(f"/approvals/{task['id']}/decide", {"decision": "approve", "comment": "同意"})
    assert st_ == 200 and out["outcome"] == "approved"
    st_, rec = li.get(f"/apps/complaints/ticket/{t['id']}")
    assert rec["status"] == "closed" and rec["compensation"] == "100.00"
    kinds = _kinds(admin, t["id"])
    assert kinds[-1] == ("transition", "refund") and sum(1 for k in kinds if k[0] == "approval") == 4

    _tick(flask_app)                                           # notifications are delivered after commit
    st_, notes = li.get("/notifications")
    assert st_ == 200 and notes["unread"] >= 1 and any("金额过高" in n["message"] for n in notes["items"])
    st_, read = li.post("/notifications/read", {"ids": [notes["items"][0]["id"]]})
    assert read["unread"] == notes["unread"] - 1
    assert li.post("/notifications/read", {"ids": "all"})[0] == 422
    assert li.post("/notifications/read", {"all": True})[1]["unread"] == 0
    assert li.get("/outbox")[0] == 403
    st_, log = admin.get("/outbox?status=sent")
    assert st_ == 200 and all(i["status"] == "sent" for i in log["items"]) and log["items"]


def _survey_token(flask_app) -> str:
    with flask_app.extensions["jimu"].engine.connect() as conn:
        return conn.execute(sa.select(st.public_tokens.c.token).where(st.public_tokens.c.kind == "survey")).scalar()


def test_public_survey_page(crew, flask_app):
    li, wang = crew["li"], crew["wang"]
    st_, cust = li.post("/apps/complaints/customer", {"name": "西部电子", "email": "qa@xibu.example.cn"})
    st_, t = li.post("/apps/complaints/ticket", {"subject": "屏幕闪烁", "customer": cust["id"]})
    path = f"/apps/complaints/ticket/{t['id']}/transitions"
    li.post(f"{path}/accept", {})
    li.post(f"{path}/resolve", {"values": {"resolution": "更换屏幕"}})
    token = _survey_token(flask_app)
    client = flask_app.test_client()

    assert client.get("/s/not-a-token!").status_code == 404
    resp = client.get("/s/" + "x" * 32, headers={"Accept": "application/json"})
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
    page = client.get(f"/s/{token}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "屏幕闪烁" in html and 'name="csat"' in html
    assert 'name="ticket"' not in html                      # the link to the ticket is set, not asked
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    bad = client.post(f"/s/{token}", data={"csrf_token": csrf, "score": "9"})
    assert bad.status_code == 422 and "csat" in bad.get_data(as_text=True)
    ok = client.post(f"/s/{token}", data={"csrf_token": csrf, "csat": "2", "score": "3", "comment": "还是闪"})
    assert ok.status_code == 200 and "感谢" in ok.get_data(as_text=True)
    again = client.post(f"/s/{token}", data={"csrf_token": csrf, "csat": "5"}, headers={"Accept": "application/json"})
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "conflict"
    # unsatisfied: the ticket is reopened, and the answer is linked to it
    st_, rec = wang.get(f"/apps/complaints/ticket/{t['id']}")
    assert rec["status"] == "in_progress"
    st_, answers = wang.get(f"/apps/complaints/survey?filter=ticket == {t['id']}")
    assert answers["total"] == 1 and answers["items"][0]["csat"] == 2


def test_simulate_explains_the_sla(crew):
    st_, out = crew["admin"].post("/apps/complaints/simulate", {
        "entity": "ticket", "record": {"subject": "停电", "urgency": "high"}, "at": "2026-04-03T16:00:00+08:00"})
    assert st_ == 200, out
    first = next(s for s in out["sla"] if s["key"] == "first_response")
    # 4 business hours from Friday 16:00: Fri 16–18, the Qingming holiday Sat–Mon, Tue 09:00–11:00
    assert first["due_at"] == "2026-04-07T11:00:00+08:00" and first["warn_at"] == "2026-04-07T10:00:00+08:00"
    assert [h["date"] for h in first["holidays"]] == ["2026-04-06"]          # the weekday it takes
    assert first["starts_at_create"] is True and any("截止" in line for line in first["lines"])
    assert out["record"]["status"] == "new"
