"""Browser fixtures: a real Jimu server on a free loopback port (werkzeug in a thread, SQLite in
a temporary folder) and headless Debian Chromium driven by Playwright (never a browser download).

Browser tests are marked ``e2e``; they are skipped only when /usr/bin/chromium is missing, through
``skip_or_fail`` so that JIMU_TEST_STRICT=1 (CI) turns the skip into a failure.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ADMIN_PASSWORD = "Passw0rd-admin"


class Server:
    def __init__(self, app, url: str):
        self.app = app
        self.url = url

    def user(self, name: str, role: str = "user", **kw) -> str:
        from runtime import users
        password = f"Passw0rd-{name}"
        with self.app.extensions["jimu"].engine.begin() as conn:
            if users.find_user(conn, name) is None:
                users.create_user(conn, name, password, role, **kw)
        return password

    def api(self):
        """An admin JSON client (bearer token) on the same app, for arranging data quickly."""
        from runtime import users
        from tests.conftest import Api
        with self.app.extensions["jimu"].engine.begin() as conn:
            uid = users.find_user(conn, "admin").id
            token = users.create_token(conn, uid, "e2e")["token"]
        return Api(self.app.test_client(), token)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        skip_or_fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium")
    from werkzeug.serving import make_server

    from web.app import create_app

    folder = tmp_path_factory.mktemp("e2e")
    app = create_app({"JIMU_DATABASE_URL": f"sqlite:///{folder}/jimu.db", "SECRET_KEY": "e2e-secret"})
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, name="jimu-e2e", daemon=True)
    thread.start()
    server = Server(app, f"http://127.0.0.1:{srv.server_port}")
    server.user("admin", "admin")
    yield server
    srv.shutdown()
    thread.join(timeout=10)
    app.extensions["jimu"].engine.dispose()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class PageWatch:
    """Collects what must never happen on a page: JS dialogs, errors, requests to other hosts."""

    def __init__(self, page, base: str):
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.foreign: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("request", lambda req: None if req.url.startswith((base, "data:")) else self.foreign.append(req.url))

    def _dialog(self, dialog):
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        if dialog.type == "confirm":
            dialog.accept()
        else:
            dialog.dismiss()


@pytest.fixture
def page(browser, server):
    # bypass_csp: the pages' Content-Security-Policy would stop an injected script anyway; the tests
    # must prove that user data is escaped in the first place (and Playwright's polling needs eval).
    context = browser.new_context(base_url=server.url, locale="zh-CN", viewport={"width": 1400, "height": 1000},
                                  bypass_csp=True)
    context.set_default_timeout(10_000)
    pg = context.new_page()
    pg.watch = PageWatch(pg, server.url)
    yield pg
    context.close()


def login(page, name: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    page.goto("/login")
    page.fill("#username", name)
    page.fill("#password", password)
    page.click("button[type=submit].primary")
    page.wait_for_url(lambda url: "/login" not in url)


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
