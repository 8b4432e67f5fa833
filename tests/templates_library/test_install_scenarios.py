"""Each built-in pack, imported with its sample data into an empty database through
``POST /api/v1/packs/import``, runs its main scenario over the REST API (SQLite and PostgreSQL).

A pack is imported once per back end (module-scoped cache; the sample data is hundreds of rows)
and every test creates the records it looks at. The parts that walk a workflow (transitions,
SLAs, approvals, surveys) need the flow runtime and are marked ``needs_flows``: they are skipped
until ``runtime/flows_runtime.py`` exists, so the rest stands on its own.
"""
from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from runtime import system_tables as st
from tests.conftest import Api, drop_pg_schema, make_pg_url, make_user, pg_available, skip_or_fail
from web.app import create_app

needs_flows = pytest.mark.skipif(importlib.util.find_spec("runtime.flows_runtime") is None,
                                 reason="the flow runtime (runtime/flows_runtime.py) has not landed yet")


class Installed:
    """A Flask app on a fresh database with one built-in pack imported with its sample data."""

    def __init__(self, backend: str, pack: str, tmp):
        self.schema = None
        if backend == "sqlite":
            url = f"sqlite:///{tmp}/{pack}.db"
        else:
            url, self.schema = make_pg_url()
        self.flask_app = create_app({"JIMU_DATABASE_URL": url, "SECRET_KEY": "test", "TESTING": True})
        self.client = self.flask_app.test_client()
        self.admin = self.api(make_user(self.flask_app, "admin", "admin"))
        st_, self.result = self.admin.post("/packs/import", {"builtin": pack, "with_sample_data": True})
        assert st_ == 201, self.result
        self.app = pack
        self.people: dict[str, dict] = {}

    def api(self, user: dict) -> Api:
        client = Api(self.client, user["token"])
        client.user = user
        return client

    def person(self, name: str, roles: list[str], teams: list[str] = ()) -> Api:
        user = make_user(self.flask_app, name, "user", app_roles={self.app: roles}, teams=list(teams))
        self.people[name] = user
        return self.api(user)

    def supervise(self, team: str, name: str) -> None:
        assert self.admin.patch(f"/teams/{team}", {"supervisor": name})[0] == 200

    def id_of(self, name: str) -> int:
        return self.people[name]["id"]

    def outbox(self, record_id: int, channel: str | None = None) -> list[dict]:
        st_, body = self.admin.get(f"/outbox?app={self.app}&record={record_id}&limit=500")
        assert st_ == 200, body
        return [d for d in body["items"] if channel is None or d["channel"] == channel]

    def survey_tokens(self, entity: str, record_id: int) -> list[str]:
        with self.flask_app.extensions["jimu"].engine.connect() as conn:
            rows = conn.execute(sa.select(st.public_tokens).where(
                st.public_tokens.c.app == self.app, st.public_tokens.c.kind == "survey")).mappings().all()
        return [r["token"] for r in rows if f'"{entity}"' in r["payload"] and str(record_id) in r["payload"]]

    def close(self) -> None:
        self.flask_app.extensions["jimu"].engine.dispose()
        if self.schema:
            drop_pg_schema(self.schema)


@pytest.fixture(scope="module")
def installs(tmp_path_factory):
    made: dict[tuple[str, str], Installed] = {}

    def get(backend: str, pack: str, setup=None) -> Installed:
        if (backend, pack) not in made:
            inst = Installed(backend, pack, tmp_path_factory.mktemp(f"{backend}-{pack}"))
            made[(backend, pack)] = inst
            if setup:
                setup(inst)
        return made[(backend, pack)]

    yield get
    for inst in made.values():
        inst.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    if request.param == "postgresql" and not pg_available():
        skip_or_fail("PostgreSQL not reachable")
    return request.param


def ok(answer, status=200):
    code, body = answer
    assert code == status, body
    return body


def soon(hours: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


# ====================================================================== complaint handling
def complaint_people(inst: Installed) -> None:
    inst.person("c_agent", ["agent"], ["tech_support", "logistics_service", "billing_service"])
    inst.person("c_agent2", ["agent"], ["customer_relations", "quality", "billing_service"])
    inst.person("c_sup", ["supervisor"])
    inst.person("c_mgr", ["manager"])
    for team in ("tech_support", "logistics_service", "billing_service", "customer_relations", "quality"):
        inst.supervise(team, "c_sup")


@pytest.fixture
def complaints(installs, backend) -> Installed:
    return installs(backend, "complaint_handling", complaint_people)


def new_customer(inst, **values):
    body = {"name": "上海明远精密机械有限公司", "customer_type": "company", "tier": "standard",
            "email": "service@mingyuan.example.cn", "phone": "021-5555-0188", **values}
    return ok(inst.admin.post(f"/apps/{inst.app}/customer", body), 201)


def ticket_body(**values):
    return {"subject": "设备运行异常", "description": "新购设备运行半小时后报警停机。", "channel": "phone",
            "contact_phone": "138-0000-1234", "category": "technical", "urgency": "medium",
            "impact": "single", **values}


def test_complaint_sample_data_and_service_dashboard(complaints):
    inst = complaints
    assert inst.result["sample_data"] == {"customer": 200, "ticket": 600, "survey": 300}
    assert inst.result["teams_created"] == ["tech_support", "logistics_service", "billing_service",
                                            "customer_relations", "quality"]
    assert ok(inst.admin.get("/apps/complaint_handling/ticket?page_size=1"))["total"] >= 600
    # the rules graded every sample ticket as it went through the pipeline
    assert ok(inst.admin.get("/apps/complaint_handling/ticket?filter=ISBLANK(severity)"))["total"] == 0
    assert ok(inst.admin.get("/apps/complaint_handling/ticket?filter=severity == 'critical'"))["total"] > 0
    dash = ok(inst.admin.get("/apps/complaint_handling/dashboards/service"))
    assert dash
    for report in ("volume_by_month", "nps", "csat", "sla_met_rate"):
        body = ok(inst.admin.get(f"/apps/complaint_handling/reports/{report}"))
        assert body["rows"], report


def test_complaint_intake_is_graded_and_dispatched(complaints):
    """Steps 1 and 2: one intake for every channel, graded by urgency and impact, dispatched by
    category and workload, the supervisor told about VIP and critical complaints."""
    inst = complaints
    agent = inst.api(inst.people["c_agent"])
    vip = new_customer(inst, tier="vip", name="北京华远集团")

    t = ok(agent.post("/apps/complaint_handling/ticket", ticket_body(customer=vip["id"])), 201)
    assert t["severity"] == "high"                      # a VIP customer's complaint is at least high
    assert t["owner"] == inst.id_of("c_agent")           # technical → team:tech_support
    assert "vip" in t["_tags"]
    notified = [d["target"] for d in inst.outbox(t["id"], "notify")]
    assert [inst.id_of("c_sup")] in notified

    critical = ok(agent.post("/apps/complaint_handling/ticket",
                             ticket_body(urgency="high", impact="widespread", category="delivery")), 201)
    assert critical["severity"] == "critical" and critical["owner"] == inst.id_of("c_sup")
    assert "urgent" in critical["_tags"]

    billing = ok(agent.post("/apps/complaint_handling/ticket", ticket_body(category="billing", urgency="low")), 201)
    assert billing["severity"] == "low"
    assert billing["owner"] in (inst.id_of("c_agent"), inst.id_of("c_agent2"))   # round robin in the team

    media = ok(agent.post("/apps/complaint_handling/ticket", ticket_body(
        category="other", description="如果今天不解决，我就向媒体曝光。")), 201)
    assert media["owner"] == inst.id_of("c_agent2") and "media_risk" in media["_tags"]

    # intake rules: a phone complaint needs a phone, an email complaint an address
    st_, body = agent.post("/apps/complaint_handling/ticket", ticket_body(contact_phone=None))
    assert st_ == 422 and "contact_phone" in body["error"]["details"]
    st_, body = agent.post("/apps/complaint_handling/ticket", ticket_body(channel="email"))
    assert st_ == 422 and "contact_email" in body["error"]["details"]
    # an agent cannot grade by hand: severity is read-only for them
    assert agent.post("/apps/complaint_handling/ticket", ticket_body(severity="low"))[0] == 403


def test_complaint_collaboration_notifies_the_departments(complaints):
    inst = complaints
    agent = inst.api(inst.people["c_agent"])
    t = ok(agent.post("/apps/complaint_handling/ticket", ticket_body()), 201)
    ok(agent.patch(f"/apps/complaint_handling/ticket/{t['id']}", {"departments": ["quality", "tech_support"]}))
    targets = [d["target"] for d in inst.outbox(t["id"], "notify")]
    assert [inst.id_of("c_agent2")] in targets            # team:quality
    assert [inst.id_of("c_agent")] in targets             # team:tech_support


@needs_flows
def test_complaint_walks_the_process_to_closed(complaints):
    """Steps 3 to 5: time-boxed response, escalation to the supervisor, resolution, survey, close."""
    inst = complaints
    agent = inst.api(inst.people["c_agent"])
    sup = inst.api(inst.people["c_sup"])
    customer = new_customer(inst, email="li.lei@example.cn")
    t = ok(agent.post("/apps/complaint_handling/ticket", ticket_body(customer=customer["id"])), 201)
    url = f"/apps/complaint_handling/ticket/{t['id']}"
    assert t["status"] == "new" and t["_flow"]["state"] == "new"
    slas = {s["key"]: s for s in t["_sla"]}
    assert slas["first_response"]["status"] == "running" and slas["resolution"]["status"] == "running"
    assert slas["first_response"]["due_at"] < slas["resolution"]["due_at"]

    t = ok(agent.post(url + "/transitions/accept", {"comment": "已电话联系客户"}))
    assert t["status"] == "in_progress" and t["responded_at"]
    assert {s["key"]: s["status"] for s in t["_sla"]}["first_response"] == "met"

    # collaboration then escalation to the supervisor
    t = ok(agent.post(url + "/transitions/escalate", {"comment": "需要主管协调质量部"}))
    assert t["status"] == "escalated" and t["escalated"] is True and t["owner"] == inst.id_of("c_sup")

    st_, body = sup.post(url + "/transitions/resolve", {})
    assert st_ == 409 and body["error"]["code"] == "transition_not_allowed"
    t = ok(sup.post(url + "/transitions/resolve", {"values": {"resolution": "更换主板并回访确认", "root_cause":
                                                              "product_defect"}}))
    assert t["status"] == "resolved" and t["resolved_at"]
    # the satisfaction survey went out to the customer
    assert inst.survey_tokens("ticket", t["id"])
    assert any(d["target"] == ["li.lei@example.cn"] for d in inst.outbox(t["id"], "email"))

    # closed once the customer confirms
    st_, body = sup.post(url + "/transitions/close", {})
    assert st_ == 409
    t = ok(sup.post(url + "/transitions/close", {"values": {"customer_confirmed": True}}))
    assert t["status"] == "closed" and t["_flow"]["state"] == "closed"
    ok(inst.admin.post("/apps/complaint_handling/survey", {"ticket": t["id"], "score": 9, "csat": 5}), 201)
    kinds = [i["kind"] for i in ok(inst.admin.get(url + "/timeline"))["items"]]
    assert kinds.count("transition") == 4


# ====================================================================== lead routing
def lead_people(inst: Installed) -> None:
    inst.person("l_rep1", ["sales_rep"], ["shanghai_sales"])
    inst.person("l_rep2", ["sales_rep"], ["inside_sales", "manufacturing_specialists"])
    inst.person("l_mgr", ["sales_manager"])
    inst.supervise("shanghai_sales", "l_mgr")


@pytest.fixture
def leads(installs, backend) -> Installed:
    return installs(backend, "lead_routing", lead_people)


HOT_LEAD = {"name": "周明", "company": "苏州精工机械有限公司", "job_title": "采购经理", "phone": "139-0000-8888",
            "region": "east", "industry": "manufacturing", "company_size": "large", "source": "website",
            "downloaded_price_list": True, "key_page_visits": 5, "need": "MES 试点"}


def test_lead_scoring_routing_and_nurture(leads):
    inst = leads
    assert inst.result["sample_data"] == {"lead": 800}
    assert ok(inst.admin.get("/apps/lead_routing/lead?filter=ISBLANK(grade)"))["total"] == 0

    hot = ok(inst.admin.post("/apps/lead_routing/lead", HOT_LEAD), 201)
    assert (hot["score"], hot["grade"]) == (95, "hot")
    assert hot["owner"] == inst.id_of("l_rep1")           # hot and east → team:shanghai_sales
    follow = ok(inst.admin.get(f"/apps/lead_routing/follow_up?filter=lead == {hot['id']}"))["items"]
    assert len(follow) == 1 and follow[0]["assignee"] == inst.id_of("l_rep1")
    due = datetime.fromisoformat(follow[0]["due_at"])
    assert timedelta(hours=23) < due - datetime.now(UTC) <= timedelta(hours=24)
    assert [inst.id_of("l_rep1")] in [d["target"] for d in inst.outbox(hot["id"], "notify")]

    warm = ok(inst.admin.post("/apps/lead_routing/lead", {
        "name": "刘洋", "company": "武汉优选商贸", "email": "yang.liu@example.cn", "region": "central",
        "industry": "retail", "company_size": "medium", "source": "website", "key_page_visits": 2}), 201)
    assert (warm["score"], warm["grade"]) == (54, "warm")
    assert "nurture" in warm["_tags"] and warm["owner"] == inst.id_of("l_rep2")   # fallback: inside sales

    st_, body = inst.admin.post("/apps/lead_routing/lead", {"name": "无联系方式", "company": "某公司", "source": "expo"})
    assert st_ == 422 and "phone" in body["error"]["details"]
    nurture = ok(inst.admin.get("/apps/lead_routing/reports/nurture_list"))
    assert nurture["rows"]
    assert ok(inst.admin.get("/apps/lead_routing/reports/lead_funnel"))["rows"]


def test_lead_capture_through_the_public_web_form(leads):
    inst = leads
    token = inst.result["public_forms"]["web_lead"]
    resp = inst.client.post(f"/public/forms/{token}", json={
        "name": "陈静", "company": "杭州云帆电商", "phone": "137-0000-1111", "region": "east",
        "industry": "ecommerce", "company_size": "small", "need": "想了解价格"})
    assert resp.status_code == 201, resp.get_json()
    lead = ok(inst.admin.get("/apps/lead_routing/lead?filter=company == '杭州云帆电商'"))["items"][0]
    assert lead["source"] == "website" and lead["grade"] == "cold" and lead["score"] == 25


@needs_flows
def test_lead_first_contact_within_24_hours(leads):
    inst = leads
    rep = inst.api(inst.people["l_rep1"])
    lead = ok(inst.admin.post("/apps/lead_routing/lead", {**HOT_LEAD, "company": "无锡恒通机械"}), 201)
    assert lead["status"] == "new" and {s["key"] for s in lead["_sla"]} == {"first_contact"}
    lead = ok(rep.post(f"/apps/lead_routing/lead/{lead['id']}/transitions/contact", {"comment": "电话沟通需求"}))
    assert lead["status"] == "contacted" and lead["first_contact_at"] and lead["contacted_on_time"] is True
    assert {s["key"]: s["status"] for s in lead["_sla"]}["first_contact"] == "met"


# ====================================================================== sales pipeline
def sales_people(inst: Installed) -> None:
    inst.person("s_rep", ["sales_rep"])
    inst.person("s_mgr", ["sales_manager"])
    inst.person("s_delivery", ["delivery"])


@pytest.fixture
def sales(installs, backend) -> Installed:
    return installs(backend, "sales_pipeline", sales_people)


def opportunity(inst, rep, **values):
    customer = ok(inst.admin.get("/apps/sales_pipeline/customer?page_size=1&sort=id"))["items"][0]
    body = {"opportunity_name": "明远精密 MES 项目", "customer": customer["id"], "amount": "880000",
            "expected_close": (datetime.now(UTC) + timedelta(days=60)).date().isoformat(), **values}
    return ok(rep.post("/apps/sales_pipeline/opportunity", body), 201)


def test_opportunities_forecast_and_rules(sales):
    inst = sales
    assert inst.result["sample_data"] == {"customer": 150, "opportunity": 450}
    rep = inst.api(inst.people["s_rep"])
    opp = opportunity(inst, rep)
    assert opp["probability"] == "10.00" and opp["weighted_amount"] == "88000.00"
    assert opp["owner"] == inst.id_of("s_rep")
    st_, body = rep.post("/apps/sales_pipeline/opportunity", {**{k: opp[k] for k in (
        "opportunity_name", "customer", "amount", "expected_close")}, "discount": 60})
    assert st_ == 422 and "discount" in body["error"]["details"]
    st_, body = rep.post("/apps/sales_pipeline/opportunity", {**{k: opp[k] for k in (
        "opportunity_name", "customer", "amount")}, "opened_on": "2026-05-01", "expected_close": "2026-04-01"})
    assert st_ == 422 and "expected_close" in body["error"]["details"]
    for report in ("forecast_by_stage", "pipeline_by_industry", "weighted_pipeline"):
        assert ok(inst.admin.get(f"/apps/sales_pipeline/reports/{report}"))["rows"], report


@needs_flows
def test_sales_stages_quote_approval_and_signing(sales):
    inst = sales
    rep, mgr = inst.api(inst.people["s_rep"]), inst.api(inst.people["s_mgr"])
    opp = opportunity(inst, rep, opportunity_name="华东物流 WMS 项目")
    url = f"/apps/sales_pipeline/opportunity/{opp['id']}/transitions"
    assert opp["stage"] == "initial_contact"
    # required fields per stage
    assert rep.post(url + "/analyse_needs", {})[0] == 409
    opp = ok(rep.post(url + "/analyse_needs", {"values": {"contact_name": "王强"}}))
    assert (opp["stage"], opp["probability"]) == ("needs_analysis", "20.00")
    assert opp["weighted_amount"] == "176000.00"   # computed after the transition's set action
    opp = ok(rep.post(url + "/present_proposal", {"values": {
        "pain_points": "库存不准", "products": ["wms", "implementation"], "decision_maker": "李总"}}))
    assert opp["stage"] == "proposal"
    # the quote needs the manager's approval
    st_, opp = rep.post(url + "/submit_quote", {"values": {"solution": "WMS + 实施", "quote_amount": "820000",
                                                           "discount": 5, "payment_terms": "milestone"}})
    assert st_ == 202 and opp["stage"] == "proposal" and opp["_approval"]
    task = next(t for t in ok(mgr.get("/tasks"))["items"] if t["record_id"] == opp["id"])
    ok(mgr.post(f"/approvals/{task['id']}/decide", {"decision": "approve", "comment": "同意"}))
    opp = ok(rep.get(f"/apps/sales_pipeline/opportunity/{opp['id']}"))
    assert (opp["stage"], opp["probability"]) == ("negotiation", "60.00")
    today = datetime.now(UTC).date().isoformat()
    opp = ok(rep.post(url + "/win", {"values": {"contract_no": "HT-2026-0088", "signed_on": today}}))
    assert (opp["stage"], opp["probability"]) == ("closed_won", "100.00")
    projects = ok(inst.admin.get(f"/apps/sales_pipeline/delivery_project?filter=opportunity == {opp['id']}"))
    assert projects["total"] == 1 and projects["items"][0]["amount"] == "820000.00"
    assert ok(inst.admin.get("/apps/sales_pipeline/reports/pipeline_funnel"))["rows"]


# ====================================================================== customer 360
def c360_people(inst: Installed) -> None:
    inst.person("am", ["account_manager"])
    inst.person("boss", ["manager"])


@pytest.fixture
def c360(installs, backend) -> Installed:
    return installs(backend, "customer_360", c360_people)


def test_customer_profile_tags_care_and_rfm(c360):
    inst = c360
    assert inst.result["sample_data"] == {"customer": 300, "contact": 416, "interaction": 1500, "sales_order": 1180}
    am = inst.api(inst.people["am"])
    customer = ok(am.post("/apps/customer_360/customer", {
        "name": "南京远景科技", "company_size": "enterprise", "birthday": "1985-06-01", "lifecycle": "new",
        "phone": "025-5555-0101", "industry": "it_services", "source": "referral", "referrer": "张伟"}), 201)
    assert {"key_account", "born_80s"} <= set(customer["_tags"])       # rule-driven tags
    assert customer["owner"] == inst.id_of("am")
    tasks = ok(am.get(f"/apps/customer_360/follow_up?filter=customer == {customer['id']}"))["items"]
    assert [(t["task_kind"], t["assignee"]) for t in tasks] == [("onboarding", inst.id_of("am"))]

    st_, body = am.post("/apps/customer_360/customer", {"name": "无联系方式客户"})
    assert st_ == 422 and "phone" in body["error"]["details"]

    ok(am.post("/apps/customer_360/interaction", {"subject": "投诉交付延期", "customer": customer["id"],
                                                 "channel": "call", "occurred_at": soon(), "sentiment": "negative"}), 201)
    order = ok(am.post("/apps/customer_360/sales_order", {"customer": customer["id"], "ordered_at": soon(),
                                                         "total": "250000"}), 201)
    assert [inst.id_of("boss")] in [d["target"] for d in inst.outbox(order["id"], "notify")] or any(
        inst.id_of("boss") in (d["target"] or []) for d in inst.outbox(order["id"], "notify"))
    # the 360° view: everything that points at the customer
    for entity in ("interaction", "sales_order", "follow_up"):
        assert ok(am.get(f"/apps/customer_360/{entity}?filter=customer == {customer['id']}"))["total"] >= 1
    rfm = ok(inst.admin.get("/apps/customer_360/reports/rfm"))
    segments = {r.get("segment") for r in rfm["rows"]}
    assert "important_value" in segments and len(segments) >= 4
    assert ok(inst.admin.get("/apps/customer_360/reports/churn_rate"))["rows"]


# ====================================================================== after-sales service
def service_people(inst: Installed) -> None:
    inst.person("desk", ["service_agent"], ["service_desk"])
    inst.person("east_eng", ["engineer"], ["service_east"])
    inst.person("svc_mgr", ["service_manager"])
    inst.supervise("service_east", "svc_mgr")


@pytest.fixture
def service(installs, backend) -> Installed:
    return installs(backend, "after_sales_service", service_people)


def test_service_requests_are_dispatched_with_a_warranty_check(service):
    inst = service
    assert inst.result["sample_data"] == {"customer": 220, "device": 380, "service_request": 700, "feedback": 320}
    token = inst.result["public_forms"]["service_web"]
    resp = inst.client.post(f"/public/forms/{token}", json={
        "contact_name": "赵敏", "contact_phone": "136-0000-2222", "address": "上海市浦东新区世纪大道 100 号",
        "region": "east", "request_type": "repair", "subject": "热水器不加热", "description": "开机后水温不升高。"})
    assert resp.status_code == 201, resp.get_json()
    request = ok(inst.admin.get("/apps/after_sales_service/service_request?filter=subject == '热水器不加热'"))["items"][0]
    assert request["channel"] == "web" and request["owner"] == inst.id_of("east_eng")     # team:service_east

    today = datetime.now(UTC).date()
    customer = ok(inst.admin.post("/apps/after_sales_service/customer", {"name": "钱多多", "phone": "135-0000-3333",
                                                                         "tier": "vip", "region": "south"}), 201)
    in_w = ok(inst.admin.post("/apps/after_sales_service/device", {
        "serial_no": "WP200-TEST-1", "product_model": "wp_200", "customer": customer["id"],
        "warranty_end": (today + timedelta(days=200)).isoformat()}), 201)
    out_w = ok(inst.admin.post("/apps/after_sales_service/device", {
        "serial_no": "WP200-TEST-2", "product_model": "wp_200", "customer": customer["id"],
        "warranty_end": (today - timedelta(days=10)).isoformat()}), 201)
    base = {"contact_name": "钱多多", "contact_phone": "135-0000-3333", "request_type": "repair",
            "description": "漏水", "submitted_at": soon(), "customer": customer["id"], "region": "east"}
    covered = ok(inst.admin.post("/apps/after_sales_service/service_request",
                                 {**base, "subject": "保内维修", "device": in_w["id"]}), 201)
    assert covered["in_warranty"] is True and "vip" in covered["_tags"]
    paid = ok(inst.admin.post("/apps/after_sales_service/service_request",
                              {**base, "subject": "保外维修", "device": out_w["id"]}), 201)
    assert paid["in_warranty"] is False and "out_of_warranty" in paid["_tags"]
    assert ok(inst.admin.get("/apps/after_sales_service/reports/warranty_mix"))["rows"]


@needs_flows
def test_service_progress_is_visible_to_the_customer(service):
    inst = service
    desk, eng = inst.api(inst.people["svc_mgr"]), inst.api(inst.people["east_eng"])
    customer = ok(inst.admin.post("/apps/after_sales_service/customer", {
        "name": "孙丽", "phone": "135-0000-4444", "email": "li.sun@example.cn", "region": "east"}), 201)
    req = ok(desk.post("/apps/after_sales_service/service_request", {
        "subject": "空调安装", "customer": customer["id"], "contact_name": "孙丽", "contact_phone": "135-0000-4444",
        "request_type": "maintenance", "description": "年度保养", "submitted_at": soon(), "region": "east"}), 201)
    url = f"/apps/after_sales_service/service_request/{req['id']}/transitions"
    assert req["status"] == "submitted"
    req = ok(desk.post(url + "/accept", {}))
    assert req["status"] == "accepted" and req["progress_note"].startswith("已受理")
    req = ok(inst.admin.post(url + "/dispatch", {"values": {"engineer": inst.id_of("east_eng"),
                                                            "appointment_at": soon(24)}}))
    assert req["status"] == "dispatched" and req["progress_note"].startswith("已派工")
    req = ok(eng.post(url + "/check_in", {}))
    assert req["status"] == "on_site" and req["arrived_at"]
    assert eng.post(url + "/complete", {})[0] == 409                    # the work summary is required
    req = ok(eng.post(url + "/complete", {"values": {"work_summary": "清洗滤网，更换密封圈"}}))
    assert req["status"] == "completed" and req["completed_at"]
    # the customer heard of every step, and got the satisfaction follow-up
    emails = [d for d in inst.outbox(req["id"]) if d["channel"] in ("email", "notify")]
    assert len(emails) >= 3
    assert inst.survey_tokens("service_request", req["id"])
    req = ok(desk.post(url + "/confirm", {}))
    assert req["status"] == "confirmed"
