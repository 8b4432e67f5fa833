"""In a real browser: user data that looks like markup renders as text on every page and never
runs; the builder is usable from the keyboard with named controls; nothing loads from elsewhere."""
from __future__ import annotations

import pytest

from .conftest import login

pytestmark = pytest.mark.e2e

XSS = "<img src=x onerror=alert(1)>"

APP = {
    "app": "xss", "label": f"App {XSS}",
    "entities": [{"key": "thing", "label": f"Thing {XSS}", "title_field": "name", "fields": [
        {"key": "name", "type": "text", "label": f"Name {XSS}", "required": True},
        {"key": "stage", "type": "select", "label": f"Stage {XSS}",
         "options": [{"value": "a", "label": f"A {XSS}"}, {"value": "b", "label": "B"}]},
        {"key": "notes", "type": "textarea", "label": "Notes"},
    ]}],
    "reports": [{"key": "by_stage", "label": f"Report {XSS}", "entity": "thing", "group_by": ["stage"],
                 "measures": [{"agg": "count"}], "chart": "bar"}],
}


def assert_inert(page, *, expect_text: bool = True) -> None:
    assert page.locator('img[src="x"]').count() == 0
    if expect_text:
        assert XSS in page.inner_text("body")
    assert page.watch.dialogs == []


def test_markup_in_user_data_stays_text_everywhere(page, server):
    api = server.api()
    st, body = api.post("/apps", APP)
    assert st == 201, body
    st, body = api.post("/apps/xss/publish", {})
    assert st == 200, body
    st, rec = api.post("/apps/xss/thing", {"name": XSS, "stage": "a", "notes": XSS})
    assert st == 201, rec
    st, _ = api.patch(f"/apps/xss/thing/{rec['id']}", {"notes": f"{XSS} 2"})
    assert st == 200

    login(page)
    for path in ("/", "/apps/xss", "/apps/xss/thing", "/apps/xss/thing/new", f"/apps/xss/thing/{rec['id']}",
                 "/apps/xss/thing/board", "/apps/xss/reports/by_stage", "/builder", "/builder/xss",
                 "/builder/xss/thing", "/builder/xss/revisions/1"):
        page.goto(path)
        page.wait_for_load_state("load")
        assert_inert(page, expect_text=path not in ("/", "/builder"))
    # the designer's properties panel and preview show labels as text too
    page.goto("/builder/xss/thing")
    page.wait_for_selector("body[data-designer-ready='1']")
    page.locator('.dcard[data-key="stage"] .card-main').click()
    assert XSS in page.input_value("#prop-options")
    page.click("#preview-toggle")
    page.wait_for_selector("#preview fieldset")
    assert_inert(page)
    # the timeline shows the change of the value as text
    page.goto(f"/apps/xss/thing/{rec['id']}")
    assert XSS in page.inner_text(".timeline")
    assert page.watch.dialogs == [] and page.watch.errors == [] and page.watch.foreign == []


def test_builder_keyboard_and_labels(page, server):
    api = server.api()
    st, _ = api.post("/apps", {"app": "kbd", "label": "键盘", "entities": [
        {"key": "lead", "label": "线索", "fields": [{"key": "name", "type": "text", "label": "名称"}]}]})
    assert st == 201
    login(page)
    page.goto("/builder/kbd/lead")
    page.wait_for_selector("body[data-designer-ready='1']")
    # add a field from the palette with the keyboard, then move it up with its button
    page.focus('.ptype[data-type="email"]')
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelectorAll('.dcard').length === 2")
    assert page.evaluate("document.activeElement.id") == "prop-label"
    key = page.eval_on_selector_all(".dcard", "els => els.map((e) => e.dataset.key)")[1]
    page.click(f'[data-fid="up-{key}"]')
    page.wait_for_function(f"document.querySelector('.dcard').dataset.key === '{key}'")
    assert page.evaluate("document.activeElement.dataset.fid") == f"up-{key}"
    # undo and redo the move
    page.click("#undo")
    page.wait_for_function("document.querySelector('.dcard').dataset.key === 'name'")
    page.click("#redo")
    page.wait_for_function(f"document.querySelector('.dcard').dataset.key === '{key}'")
    # sections with columns: add one and drag the field into it
    page.click("#add-section")
    page.select_option("#sec-cols-1", "2")
    grid = page.locator('.dgrid[data-section="1"]')
    page.locator(f'.dcard[data-key="{key}"] .handle').drag_to(grid)
    page.wait_for_selector(f'.dsection.cols-2 .dcard[data-key="{key}"]')
    from .test_journey import UNNAMED
    assert page.evaluate(UNNAMED) == []
    page.wait_for_selector("text=所有更改已保存")
    st, draft = api.get("/apps/kbd/draft")
    layout = draft["forms"][0]["layout"]
    assert layout[1]["columns"] == 2 and layout[1]["fields"] == [key]
