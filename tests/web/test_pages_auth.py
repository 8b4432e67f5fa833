"""Pages and sign-in: every page needs a session and shows no data without one; CSRF on every
form (the login form included); the language of a page; nothing loaded from other hosts."""
from __future__ import annotations

import copy
import re
from pathlib import Path

from .pages_support import CRM, csrf_of, sign_in

PAGES = ["/", "/tasks", "/apps/crm", "/apps/crm/customer", "/apps/crm/customer/new", "/apps/crm/customer/1",
         "/apps/crm/customer/board", "/apps/crm/reports/any", "/apps/crm/dashboards/any", "/builder",
         "/builder/crm", "/builder/crm/customer", "/builder/crm/revisions/1"]


def test_pages_without_a_session_redirect_to_login_and_show_no_data(flask_app, api, make_app):
    make_app(copy.deepcopy(CRM))
    st, _ = api.post("/apps/crm/customer", {"name": "机密客户 SECRET-42"})
    assert st == 201
    client = flask_app.test_client()
    for path in PAGES:
        resp = client.get(path)
        assert resp.status_code == 302, path
        assert "/login" in resp.headers["Location"], path
        assert "SECRET-42" not in resp.text and "机密客户" not in resp.text and "客户管理" not in resp.text
    # and the same with the JSON a page's script would call
    assert client.get("/api/v1/apps/crm/customer").status_code == 401


def test_login_without_csrf_is_refused(flask_app):
    from tests.conftest import make_user
    user = make_user(flask_app, "ann", "user")
    client = flask_app.test_client()
    login_page = client.get("/login")
    assert 'name="csrf_token"' in login_page.text
    resp = client.post("/login", data={"username": "ann", "password": user["password"]})
    assert resp.status_code == 403
    assert client.get("/").status_code == 302          # still signed out
    resp = client.post("/login", data={"username": "ann", "password": user["password"], "csrf_token": "forged"})
    assert resp.status_code == 403
    resp = client.post("/login", data={"username": "ann", "password": user["password"],
                                       "csrf_token": csrf_of(login_page.text)})
    assert resp.status_code == 302 and client.get("/").status_code == 200


def test_every_page_form_needs_the_csrf_token(flask_app, make_app):
    make_app(copy.deepcopy(CRM))
    pc = sign_in(flask_app)
    for path, data in (("/apps/crm/customer/new", {"f_name": "x"}), ("/builder", {"app": "zz", "label": "z"}),
                       ("/apps/crm/customer/views", {"name": "v"}), ("/lang/en", {}), ("/logout", {})):
        resp = pc.client.post(path, data=data)
        assert resp.status_code == 403, path
    st, body = pc.json("GET", "/api/v1/apps/crm/customer")
    assert st == 200
    resp = pc.client.post("/api/v1/apps/crm/customer", json={"name": "x"})      # the page's JS sends the header
    assert resp.status_code == 403
    assert pc.json("POST", "/api/v1/apps/crm/customer", {"name": "x"})[0] == 201


def test_every_form_on_every_page_carries_a_csrf_token(flask_app, api, make_app):
    make_app(copy.deepcopy(CRM))
    st, rec = api.post("/apps/crm/customer", {"name": "甲"})
    pc = sign_in(flask_app)
    for path in PAGES[:6] + ["/builder", "/builder/crm", "/builder/crm/customer", f"/apps/crm/customer/{rec['id']}"]:
        html = pc.get(path).text
        for form in re.findall(r"<form\b[^>]*>.*?</form>", html, flags=re.S):
            if re.search(r'method="post"', form, flags=re.I):
                assert 'name="csrf_token"' in form, (path, form[:200])


def test_language_follows_the_choice_then_the_browser(flask_app):
    client = flask_app.test_client()
    assert '<html lang="en">' in client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"}).text
    zh = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text
    assert '<html lang="zh-CN">' in zh and "登录" in zh
    assert '<html lang="zh-CN">' in flask_app.test_client().get("/login").text     # default
    token = csrf_of(zh)
    resp = client.post("/lang/en", data={"csrf_token": token, "next": "/login"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/login"
    en = client.get("/login", headers={"Accept-Language": "zh-CN"}).text
    assert '<html lang="en">' in en and "Sign in" in en and "User name" in en
    resp = client.post("/lang/zh-CN", data={"csrf_token": token, "next": "https://evil.example/"})
    assert resp.headers["Location"] == "/"                                     # no open redirect
    assert '<html lang="zh-CN">' in client.get("/login").text


def test_pages_load_nothing_from_other_hosts(flask_app, make_app):
    make_app(copy.deepcopy(CRM))
    pc = sign_in(flask_app)
    resp = pc.get("/apps/crm/customer")
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    root = Path(__file__).resolve().parents[2] / "web"
    for path in list((root / "templates").glob("*.html")) + list((root / "static").glob("*")):
        text = path.read_text("utf-8")
        assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", text), path.name
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text and "document.write" not in text, path.name
    for path in (root / "templates").glob("*.html"):
        text = path.read_text("utf-8")
        assert "|safe" not in text.replace(" ", "") and "Markup(" not in text, path.name
        assert not re.search(r"<script(?![^>]*(type=\"application/json\"|src=))", text), path.name
