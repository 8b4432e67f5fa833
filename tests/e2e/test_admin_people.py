"""People administration in a real browser: an admin creates a team and a user through the pages,
then that user signs in, finds the token page from the top navigation and creates a token."""
from __future__ import annotations

import pytest

from .conftest import login, screenshot
from .test_journey import UNNAMED

pytestmark = pytest.mark.e2e


def test_admin_adds_a_team_and_a_user_who_creates_a_token(page, server):
    login(page)
    page.locator("nav.topnav a[href='/admin/people']").click()
    page.wait_for_url("**/admin/people")

    page.locator("a[href='/admin/people/teams/new']").click()
    page.wait_for_url("**/admin/people/teams/new")
    assert page.evaluate(UNNAMED) == []
    page.fill("#t-key", "east")
    page.fill("#t-label", "华东 <b>一组</b>")
    page.click("#team-form button[type=submit]")
    page.wait_for_url("**/admin/people")
    assert "华东 <b>一组</b>" in page.inner_text("#teams")          # shown as text, not markup
    assert page.locator("#teams b").count() == 0

    page.locator("a[href='/admin/people/users/new']").click()
    page.wait_for_url("**/admin/people/users/new")
    assert page.evaluate(UNNAMED) == []
    page.fill("#u-name", "小王")
    page.fill("#u-display", "王工")
    page.fill("#u-password", "short")                      # refused: the form comes back with the message
    page.check("input[name=teams][value=east]")
    page.click("#user-form button[type=submit]")
    page.wait_for_selector("#form-error")
    assert page.input_value("#u-name") == "小王" and page.input_value("#u-password") == ""
    assert page.is_checked("input[name=teams][value=east]")
    page.fill("#u-password", "Secret-小王-1")
    page.select_option("#u-role", "user")
    page.click("#user-form button[type=submit]")
    page.wait_for_url("**/admin/people")
    row = page.locator("#users tr[data-user='小王']")
    assert "east" in row.inner_text() and "王工" in row.inner_text()
    screenshot(page, "admin-people.png")

    page.click("form[action='/logout'] button")
    page.wait_for_url("**/login**")
    login(page, "小王", "Secret-小王-1")
    nav = page.locator("nav.topnav")
    assert nav.locator("a[href='/admin/people']").count() == 0
    nav.locator("a[href='/me/tokens']").click()
    page.wait_for_url("**/me/tokens")
    assert page.evaluate(UNNAMED) == []
    page.fill("#tk-name", "ERP 同步")
    page.check("input[name=scope][value=write]")
    page.click("#token-form button[type=submit]")
    secret = page.input_value("#token-secret")
    assert secret.startswith("jimu_")
    assert "ERP 同步" in page.inner_text("#tokens")
    screenshot(page, "my-tokens.png")
    assert server.app.test_client().get("/api/v1/apps", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    page.goto("/admin/people")
    assert "403" in page.inner_text("h1")
    assert page.watch.errors == [] and page.watch.foreign == [] and page.watch.dialogs == []
