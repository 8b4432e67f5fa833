"""A new user's journey in a real browser: sign in, create an app, design its form by drag and
drop, publish, use the generated form, list, kanban and 360° page, and switch languages."""
from __future__ import annotations

import re

import pytest

from .conftest import login, screenshot

pytestmark = pytest.mark.e2e

UNNAMED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
  .filter((e) => e.getClientRects().length)
  .filter((e) => {
    const byLabel = e.labels && [...e.labels].map((l) => l.textContent.trim()).join('');
    const by = e.getAttribute('aria-labelledby');
    const byRef = by && by.split(' ').map((id) => document.getElementById(id)?.textContent.trim() || '').join('');
    const own = e.tagName === 'BUTTON' && e.textContent.trim();
    return !(byLabel || e.getAttribute('aria-label') || byRef || own || e.getAttribute('title'));
  }).map((e) => e.outerHTML.slice(0, 160))"""


def drop_type(page, type_name: str, section: int = 0) -> None:
    grid = page.locator(f'.dgrid[data-section="{section}"]')
    before = grid.locator(".dcard").count()
    box = grid.bounding_box()
    page.locator(f'.ptype[data-type="{type_name}"]').drag_to(
        grid, target_position={"x": box["width"] / 2, "y": box["height"] - 8})
    page.wait_for_function(f"document.querySelectorAll('.dgrid[data-section=\"{section}\"] .dcard').length === {before + 1}")


def card_keys(page) -> list[str]:
    return page.eval_on_selector_all(".dgrid .dcard", "els => els.map((e) => e.dataset.key)")


def set_label(page, key_before: str, label: str) -> None:
    page.locator(f'.dcard[data-key="{key_before}"] .card-main').click()
    page.fill("#prop-label", label)
    page.locator("#prop-label").press("Tab")


def test_new_user_builds_and_uses_an_app(page, server):
    login(page)
    # create an app
    page.goto("/builder")
    page.fill("#app-label", "Help desk")
    assert page.input_value("#app-key") == "help_desk"   # derived from the name, editable
    page.fill("#app-key", "helpdesk")
    page.click("#create-app button[type=submit]")
    page.wait_for_url("**/builder/helpdesk")
    page.fill("#entity-label", "Ticket")
    page.click("#add-entity button[type=submit]")
    page.wait_for_url("**/builder/helpdesk/ticket")
    page.wait_for_selector("body[data-designer-ready='1']")
    assert page.evaluate(UNNAMED) == []

    # drag five field types onto the form
    for type_name in ("select", "phone", "number", "date", "textarea"):
        drop_type(page, type_name)
    keys = card_keys(page)
    assert len(keys) == 6 and keys[0] == "name"
    set_label(page, keys[1], "Status")
    page.fill("#prop-options", "new | 新建\ndone | 完成")
    page.locator("#prop-options").press("Tab")
    set_label(page, card_keys(page)[2], "Phone")
    assert card_keys(page)[1:3] == ["status", "phone"]

    # reorder two: drop the date card in front of the phone card
    date_key = card_keys(page)[4]
    phone = page.locator('.dcard[data-key="phone"]')
    page.locator(f'.dcard[data-key="{date_key}"] .handle').drag_to(phone, target_position={"x": 30, "y": 3})
    page.wait_for_function(f"[...document.querySelectorAll('.dcard')].map(e => e.dataset.key).indexOf('{date_key}') === 2")
    assert card_keys(page)[2:4] == [date_key, "phone"]

    # phone: required when the status is done; the condition is checked live against the server
    page.locator('.dcard[data-key="phone"] .card-main').click()
    page.fill("#prop-required_if", "status == ")
    page.wait_for_selector("#prop-required_if-status.bad")
    assert page.get_attribute("#prop-required_if", "aria-invalid") == "true"
    page.fill("#prop-required_if", "status == 'done'")
    page.wait_for_selector("#prop-required_if-status.ok")
    page.locator("#prop-required_if").press("Tab")
    page.wait_for_selector("text=所有更改已保存")
    assert page.is_visible("#unpublished-badge")
    assert page.evaluate(UNNAMED) == []
    screenshot(page, "builder-designer.png")

    # publish, reading the plan first
    page.click("#publish-btn")
    summary = page.wait_for_selector("#plan-summary")
    assert "创建 1 张表" in summary.inner_text()
    page.click("#publish-confirm")
    page.wait_for_selector("#unpublished-badge", state="hidden")

    # the generated form: empty submit shows errors next to the fields
    page.goto("/apps/helpdesk/ticket/new")
    assert page.evaluate(UNNAMED) == []
    screenshot(page, "runtime-form.png")
    page.click("#record-form button[type=submit]")
    page.wait_for_selector("#fld-name-err[role=alert]")
    assert page.get_attribute("#fld-name", "aria-invalid") == "true"
    assert "必填" in page.inner_text("#fld-name-err")
    assert page.evaluate("document.activeElement.id") == "fld-name"
    # focus order follows the layout
    order = page.eval_on_selector_all("#record-form [data-field] [name^=f_]", "els => els.map((e) => e.id)")
    seen = [page.evaluate("document.activeElement.id")]
    for _ in range(40):    # a date input takes several Tab presses (one per part)
        page.keyboard.press("Tab")
        now = page.evaluate("document.activeElement.id")
        if now != seen[-1]:
            seen.append(now)
        if now == order[-1]:
            break
    assert seen == order

    page.fill("#fld-name", "打印机卡纸")
    page.select_option("#fld-status", "done")
    page.click("#record-form button[type=submit]")
    page.wait_for_selector("#fld-phone-err[role=alert]")        # required_if, from the server
    assert page.get_attribute("#fld-phone", "aria-invalid") == "true"
    page.fill("#fld-phone", "+86 21 5555 0101")
    page.click("#record-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/apps/helpdesk/ticket/\d+$"))
    record_url = page.url

    # another record that the filter must leave out
    api = server.api()
    st, _ = api.post("/apps/helpdesk/ticket", {"name": "网络中断", "status": "new"})
    assert st == 201

    # find it in the list through the filter bar
    page.goto("/apps/helpdesk/ticket")
    page.click("#add-condition")
    page.select_option(".fb-row .fb-field", "status")
    page.select_option(".fb-row .fb-value", "done")
    assert page.input_value("#filter") == "status == 'done'"
    page.click("#filter-form button[type=submit]")
    page.wait_for_url(re.compile(r".*filter=.*"))
    rows = page.locator("table.records tbody tr")
    assert rows.count() == 1 and "打印机卡纸" in rows.first.inner_text()

    # move it on the kanban
    page.goto("/apps/helpdesk/ticket/board")
    card = page.locator(".kcard", has_text="打印机卡纸")
    assert card.get_attribute("data-value") == "done"
    card.drag_to(page.locator('.column[data-value="new"]'))
    page.wait_for_selector('.column[data-value="new"] .kcard:has-text("打印机卡纸")')
    page.wait_for_selector("#board-status:has-text('已移动到')")

    # the record page shows the move on its timeline
    page.goto(record_url)
    change = page.locator(".timeline .changes li").first
    assert "完成" in change.inner_text() and "新建" in change.inner_text()

    # switch the UI to English and back
    page.click("button[lang=en]")
    page.wait_for_selector("html[lang=en]")
    assert page.is_visible("h2:has-text('Timeline')")
    page.click("button[lang=zh-CN]")
    page.wait_for_selector("html[lang=zh-CN]")
    assert page.is_visible("h2:has-text('时间线')")

    assert page.watch.dialogs == [] and page.watch.errors == [] and page.watch.foreign == []
