"""The kanban of an entity with a workflow, in a real browser: dragging a card runs the transition
that leads to the column; a refused transition (no way there, or a guard) is shown and the card
goes back; the record page offers the transitions and its timeline records them."""
from __future__ import annotations

import pytest

from .conftest import login

pytestmark = pytest.mark.e2e

APP = {"app": "flowy", "label": "流程看板", "entities": [{"key": "ticket", "label": "工单", "title_field": "subject", "fields": [
    {"key": "subject", "type": "text", "label": "主题", "required": True},
    {"key": "status", "type": "select", "label": "状态", "options": ["new", "doing", "done"]},
    {"key": "resolution", "type": "text", "label": "处理结果"}]}],
    "flows": [{"key": "handling", "entity": "ticket", "state_field": "status", "initial": "new",
               "states": [{"key": "new", "label": "待受理"}, {"key": "doing", "label": "处理中"},
                          {"key": "done", "label": "已解决", "final": True}],
               "transitions": [{"key": "start", "label": "开始处理", "from": ["new"], "to": "doing"},
                               {"key": "finish", "label": "解决", "from": ["doing"], "to": "done",
                                "condition": "not ISBLANK(resolution)"}]}]}


def test_dragging_a_card_runs_the_transition_and_shows_refusals(page, server):
    api = server.api()
    assert api.post("/apps", APP)[0] == 201
    assert api.post("/apps/flowy/publish", {})[0] == 200
    st, rec = api.post("/apps/flowy/ticket", {"subject": "发票开错了"})
    assert st == 201 and rec["status"] == "new"
    login(page)
    page.goto("/apps/flowy/ticket/board")
    titles = page.eval_on_selector_all(".column h2", "els => els.map((e) => e.firstChild.textContent.trim())")
    assert titles == ["待受理", "处理中", "已解决"]
    card = page.locator(".kcard", has_text="发票开错了")
    # no transition leads from new to done: refused in place
    card.drag_to(page.locator('.column[data-value="done"]'))
    page.wait_for_selector("#board-error[role=alert]")
    assert "待受理" in page.inner_text("#board-error") and card.get_attribute("data-value") == "new"
    # new -> doing runs "start"
    card.drag_to(page.locator('.column[data-value="doing"]'))
    page.wait_for_selector('.column[data-value="doing"] .kcard:has-text("发票开错了")')
    # doing -> done: the guard refuses (no resolution); the server's reason is shown, the card stays
    card.drag_to(page.locator('.column[data-value="done"]'))
    page.wait_for_selector("#board-error:has-text('resolution')")
    assert card.get_attribute("data-value") == "doing"
    assert api.get(f"/apps/flowy/ticket/{rec['id']}")[1]["status"] == "doing"
    # the record page: the state is read-only, the transition is a button, the timeline has the move
    page.goto(f"/apps/flowy/ticket/{rec['id']}")
    assert page.locator('[name="f_status"]').count() == 0
    page.fill("#fld-resolution", "已重开发票")
    page.click("#record-form button[type=submit]")
    page.wait_for_selector(".flash.ok")
    page.click("button.transition[data-transition=finish]")
    page.wait_for_selector("button.transition", state="detached")
    assert "已解决" in page.inner_text(".record-main")
    assert "处理中" in page.inner_text(".timeline")
    assert page.watch.dialogs == [] and page.watch.errors == []
