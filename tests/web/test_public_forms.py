"""Public forms: token from publish, only listed fields, ``set`` values, the records pipeline as the
``public`` actor, honeypot, size limits, rate limit per address, and the server-rendered page."""
from __future__ import annotations

import copy
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from runtime import system_tables as st_
from runtime.context import Actor, Context
from runtime.permissions import access_for, public_actor

LEADS = {
    "app": "web",
    "label": "官网线索",
    "roles": ["sales"],
    "entities": [
        {"key": "lead", "label": "线索", "title_field": "name", "fields": [
            {"key": "name", "type": "text", "label": "姓名", "required": True, "max_length": 50},
            {"key": "phone", "type": "phone", "label": "电话"},
            {"key": "company", "type": "text", "label": "公司"},
            {"key": "need", "type": "textarea", "label": "需求"},
            {"key": "interest", "type": "multiselect", "label": "感兴趣", "options": [
                {"value": "crm", "label": "客户管理"}, {"value": "erp", "label": "进销存"}]},
            {"key": "size", "type": "select", "label": "规模", "options": [
                {"value": "small", "label": "小"}, {"value": "big", "label": "大"}]},
            {"key": "source", "type": "select", "label": "来源", "options": ["website", "expo"]},
            {"key": "score", "type": "number", "label": "评分"},
            {"key": "secret", "type": "text", "label": "内部备注"},
        ]},
        {"key": "note", "label": "备注", "fields": [{"key": "text", "type": "text", "label": "内容"}]},
    ],
    "forms": [
        {"key": "web_lead", "entity": "lead", "label": "联系我们",
         "public": {"fields": ["name", "phone", "company", "need", "interest", "size"],
                    "set": {"source": "website"}, "rate_limit": "5/hour"}},
        {"key": "internal", "entity": "lead"},
    ],
    "rules": [
        {"key": "lead_score", "kind": "score", "entity": "lead", "target": "score", "components": [
            {"condition": "source == 'website'", "points": 20}, {"condition": "not ISBLANK(phone)", "points": 5}]},
    ],
    "permissions": [{"role": "sales", "entity": "lead", "create": True, "read": "all"}],
}


@pytest.fixture
def form(api, make_app, flask_app):
    out = make_app(copy.deepcopy(LEADS))
    assert set(out["public_forms"]) == {"web_lead"}
    token = out["public_forms"]["web_lead"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,64}", token)
    return token


def post(flask_app, token, body=None, *, addr="203.0.113.7", **kw):
    resp = flask_app.test_client().post(f"/public/forms/{token}", json=body, environ_base={"REMOTE_ADDR": addr}, **kw)
    return resp.status_code, resp.get_json(silent=True)


def leads_in_db(flask_app) -> list[dict]:
    svc = flask_app.extensions["jimu"]
    with svc.engine.connect() as conn:
        table = svc.catalog.get(conn, "web").tables["lead"]
        return [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]


def test_a_submission_runs_the_pipeline_with_set_values(form, flask_app, api):
    st, body = post(flask_app, form, {"name": "王伟", "phone": "+86 138 0000 0000", "company": "华东精密",
                                      "interest": ["crm"], "size": "big"})
    assert st == 201 and body["ok"] is True, body
    assert "id" not in body and "secret" not in body          # nothing of the record goes back out
    rows = leads_in_db(flask_app)
    assert len(rows) == 1
    lead = rows[0]
    assert lead["source"] == "website" and lead["score"] == 25 and lead["name"] == "王伟"
    assert lead["owner"] is None and lead["created_by"] is None
    st, log = api.get("/audit?app=web&action=create")
    assert log["items"][0]["record"] == lead["id"] and log["items"][0]["user"] is None
    # the same publish again keeps the token
    st, again = api.post("/apps/web/publish", {})
    assert again["public_forms"] == {"web_lead": form}


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "source": "expo"}, "source"),             # a `set` field is not the visitor's to send
    ({"name": "x", "secret": "y"}, "secret"),                # a field the form does not list
    ({"name": "x", "owner": 1}, "owner"),                    # system fields neither
    ({"name": "x", "_version": 3}, "_version"),
    ({"name": "x", "nope": 1}, "nope"),
    ({"phone": "123"}, "name"),                              # required, and the phone is wrong too
    ({"name": "x" * 51}, "name"),                            # the field's own max_length
    ({"name": "x", "need": "y" * 20_000}, "need"),           # the form's size limit per value
    ({"name": {"a": 1}}, "name"),                            # no objects
])
def test_anything_but_the_listed_fields_answers_422_and_stores_nothing(form, flask_app, body, field):
    st, out = post(flask_app, form, body)
    assert st == 422 and out["error"]["code"] == "validation_failed", out
    assert field in out["error"]["details"]
    assert leads_in_db(flask_app) == []


def test_bad_tokens_and_bodies(form, flask_app):
    assert post(flask_app, "no-such-token-at-all", {"name": "x"})[0] == 404
    assert post(flask_app, "../../etc", {"name": "x"})[0] == 404
    resp = flask_app.test_client().post(f"/public/forms/{form}", data=b"{nope", content_type="application/json")
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "bad_request"
    st, out = post(flask_app, form, ["name"])
    assert st == 422
    resp = flask_app.test_client().post(f"/public/forms/{form}", data=b"x" * (70 * 1024),
                                        content_type="application/json")
    assert resp.status_code == 413 and resp.get_json()["error"]["code"] == "payload_too_large"
    assert leads_in_db(flask_app) == []


def test_form_encoded_posts_work_for_websites(form, flask_app):
    resp = flask_app.test_client().post(f"/public/forms/{form}", data={"name": "李娜", "interest": ["crm", "erp"]},
                                        environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert resp.status_code == 201, resp.get_json()
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert leads_in_db(flask_app)[0]["interest"] == ["crm", "erp"]
    resp = flask_app.test_client().post(f"/public/forms/{form}", data='{"name": "纯文本"}'.encode(),
                                        content_type="text/plain;charset=UTF-8",
                                        environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert resp.status_code == 201 and leads_in_db(flask_app)[1]["name"] == "纯文本"
    pre = flask_app.test_client().options(f"/public/forms/{form}")
    assert pre.status_code == 204 and "POST" in pre.headers["Access-Control-Allow-Methods"]


def test_a_filled_honeypot_pretends_success_and_stores_nothing(form, flask_app):
    st, body = post(flask_app, form, {"name": "bot", "website_url": "http://spam.example"})
    assert st == 201 and body["ok"] is True
    assert leads_in_db(flask_app) == []


def test_a_flood_is_refused_past_the_rate_limit_per_address(form, flask_app):
    codes = [post(flask_app, form, {"name": f"n{i}"})[0] for i in range(12)]
    assert codes == [201] * 5 + [429] * 7
    st, body = post(flask_app, form, {"name": "again"})
    assert st == 429 and body["error"]["code"] == "rate_limited"
    assert len(leads_in_db(flask_app)) == 5
    # another address has its own allowance
    assert post(flask_app, form, {"name": "other"}, addr="203.0.113.99")[0] == 201
    # refused and invalid submissions are not counted: the window slides over accepted ones only
    svc = flask_app.extensions["jimu"]
    with svc.engine.begin() as conn:
        hits = st_.rate_hits
        n = conn.execute(sa.select(sa.func.count()).select_from(hits)
                         .where(hits.c.bucket.like("%203.0.113.7"))).scalar_one()
        assert n == 5
        # an hour later the address may submit again
        for hit_id, at in conn.execute(sa.select(hits.c.id, hits.c.at)).all():
            conn.execute(hits.update().where(hits.c.id == hit_id).values(at=at - timedelta(minutes=61)))
    assert post(flask_app, form, {"name": "later"})[0] == 201
    assert len(leads_in_db(flask_app)) == 7


def test_the_public_actor_may_create_on_its_entity_and_nothing_else(form, flask_app):
    svc = flask_app.extensions["jimu"]
    with svc.engine.begin() as conn:
        capp = svc.catalog.get(conn, "web")
        actor = public_actor("web", "lead")
        lead = access_for(actor, capp, "lead")
        assert lead.scope("create") == "all"
        assert [lead.scope(op) for op in ("read", "update", "delete", "export")] == ["none"] * 4
        assert access_for(actor, capp, "note").scope("create") == "none"
        assert access_for(public_actor("other", "lead"), capp, "lead").scope("create") == "none"
        assert access_for(Actor(id=None, name="public", role="public"), capp, "lead").scope("create") == "none"
        ctx = Context(conn, actor)
        with pytest.raises(Exception) as info:
            svc.records.list(ctx, "web", "lead")
        assert info.value.status == 403
        with pytest.raises(Exception) as info:
            svc.records.create(ctx, "web", "note", {"text": "x"})
        assert info.value.status == 403


def test_the_page_renders_and_posts_with_csrf(form, flask_app):
    client = flask_app.test_client()
    resp = client.get(f"/f/{form}", environ_base={"REMOTE_ADDR": "192.0.2.5"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "联系我们" in html and "姓名" in html and "客户管理" in html and 'name="website_url"' in html
    assert "内部备注" not in html and 'name="secret"' not in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    # without the CSRF token the post is refused
    bad = client.post(f"/f/{form}", data={"name": "x"}, environ_base={"REMOTE_ADDR": "192.0.2.5"})
    assert bad.status_code == 403
    # errors come back next to their fields, with what was typed
    resp = client.post(f"/f/{form}", data={"csrf_token": token, "name": "", "phone": "abc", "company": "<b>华</b>"},
                       environ_base={"REMOTE_ADDR": "192.0.2.5"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert 'id="err-phone"' in html and 'id="err-name"' in html
    assert "&lt;b&gt;华&lt;/b&gt;" in html and "<b>华</b>" not in html       # inert
    resp = client.post(f"/f/{form}", data={"csrf_token": token, "name": "赵六", "interest": ["erp"], "size": "small"},
                       environ_base={"REMOTE_ADDR": "192.0.2.5"})
    assert resp.status_code == 200 and "感谢提交" in resp.get_data(as_text=True)
    rows = leads_in_db(flask_app)
    assert [(r["name"], r["source"], r["interest"], r["size"]) for r in rows] == [("赵六", "website", ["erp"], "small")]
    assert client.get("/f/not-a-real-token-zz").status_code == 404


def test_a_form_that_stops_being_public_stops_answering(form, flask_app, api):
    st, draft = api.get("/apps/web/draft")
    draft["forms"][0].pop("public")
    assert api.put("/apps/web/draft", draft)[0] == 200
    assert api.post("/apps/web/publish", {})[0] == 200
    assert post(flask_app, form, {"name": "x"})[0] == 404
    assert flask_app.test_client().get(f"/f/{form}").status_code == 404
