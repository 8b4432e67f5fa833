"""The builder's rule and workflow editors in a real browser: a condition with a syntax error shows
its error inline at its position until fixed; the simulate panel shows the score breakdown of a
sample record; a transition added through the form appears in the SVG diagram."""
from __future__ import annotations

import pytest

from .conftest import login, screenshot

pytestmark = pytest.mark.e2e

APP = {"app": "editors", "label": "编辑器", "entities": [{"key": "lead", "label": "线索", "title_field": "name", "fields": [
    {"key": "name", "type": "text", "label": "名称"},
    {"key": "source", "type": "select", "label": "来源", "options": ["web", "phone"]},
    {"key": "visits", "type": "number", "label": "访问次数"},
    {"key": "score", "type": "number", "label": "评分"},
    {"key": "status", "type": "select", "label": "状态", "options": ["new", "won", "lost"]}]}],
    "rules": [{"key": "lead_score", "kind": "score", "entity": "lead", "target": "score",
               "components": [{"condition": "source == 'web'", "points": 20}, {"expression": "MIN(visits, 10) * 3"}]}],
    "flows": [{"key": "sales", "entity": "lead", "state_field": "status", "initial": "new",
               "states": [{"key": "new", "label": "新线索"}, {"key": "won", "label": "赢单", "final": True},
                          {"key": "lost", "label": "丢单", "final": True}],
               "transitions": [{"key": "win", "from": ["new"], "to": "won"}]}]}


def test_rule_editor_inline_errors_simulation_and_flow_diagram(page, server):
    api = server.api()
    assert api.post("/apps", APP)[0] == 201
    assert api.post("/apps/editors/publish", {})[0] == 200
    login(page)
    page.goto("/builder/editors/edit/rules")
    page.get_by_role("button", name="编辑 lead_score").click()
    prop = page.locator("#rule-form fieldset.rows-editor .expr-prop").first
    condition = prop.locator("input.expr")
    assert condition.input_value() == "source == 'web'"
    condition.fill("source == ")
    status = prop.locator(".check-status.bad")
    status.wait_for()
    assert "第 10 个字符处" in status.inner_text() or "个字符处" in status.inner_text()
    assert condition.get_attribute("aria-invalid") == "true"
    caret = prop.locator("pre.expr-caret")
    assert caret.is_visible() and "^" in caret.inner_text()
    condition.fill("source == 'web'")
    prop.locator(".check-status.ok").wait_for()
    assert not caret.is_visible()
    page.click("#save-rules")
    page.wait_for_function("document.getElementById('rules-status').textContent.includes('所有更改已保存')")

    page.select_option("#sim-entity", "lead")
    page.select_option("#sim-fields select[data-key=source]", "web")
    page.fill("#sim-fields input[data-key=visits]", "4")
    page.click("#sim-run")
    breakdown = page.locator("#sim-result table", has_text="lead_score")
    breakdown.wait_for()
    assert "32" in breakdown.locator("caption").inner_text()
    cells = breakdown.locator("tbody td").all_inner_texts()
    assert "20" in cells and "12" in cells
    screenshot(page, "builder-rules-simulate.png")

    page.goto("/builder/editors/edit/flows")
    assert page.locator("#flow-diagram g.transition").count() == 1
    transitions = page.locator("#flow-form fieldset.rows-editor", has=page.locator("legend", has_text="流转"))
    transitions.get_by_role("button", name="添加一行").click()
    row = transitions.locator(".row").last
    row.get_by_label("键", exact=True).fill("lose")
    row.get_by_label("从（逗号分隔）", exact=True).fill("new")
    row.get_by_label("到", exact=True).fill("lost")
    arrow = page.locator('#flow-diagram g.transition[data-transition="lose"]')
    arrow.wait_for()
    assert arrow.get_attribute("data-from") == "new" and arrow.get_attribute("data-to") == "lost"
    assert arrow.locator("text").text_content() == "lose"  # the key when there is no label
    page.click("#save-flows")
    page.wait_for_function("document.getElementById('flows-status').textContent.includes('所有更改已保存')")
    st, draft = api.get("/apps/editors/draft")
    assert any(t["key"] == "lose" and t["to"] == "lost" for t in draft["flows"][0]["transitions"])
    screenshot(page, "builder-flow-diagram.png")
    assert not page.watch.dialogs and not page.watch.errors and not page.watch.foreign


def test_editors_save_and_refuse_through_one_path(page, server):
    api = server.api()
    assert api.post("/apps", {**APP, "app": "editors2"})[0] == 201
    assert api.post("/apps/editors2/publish", {})[0] == 200
    login(page)
    # a new report, saved and previewed
    page.goto("/builder/editors2/edit/reports")
    page.click("#add-report")
    page.click("#preview-report")
    page.wait_for_function("document.getElementById('reports-status').textContent.includes('所有更改已保存')")
    page.locator("#report-preview img.chart").wait_for()
    assert page.locator("#unpublished-badge").is_visible()
    st, draft = api.get("/apps/editors2/draft")
    assert st == 200 and [r["key"] for r in draft["reports"]] == ["report_1"]
    # a rule the draft refuses: nothing saved, the problems said
    page.goto("/builder/editors2/edit/rules")
    page.get_by_role("button", name="编辑 lead_score").click()
    condition = page.locator("#rule-form fieldset.rows-editor .expr-prop input.expr").first
    condition.fill("source == ")
    page.click("#save-rules")
    page.wait_for_function("document.getElementById('rules-status').textContent.includes('草稿未保存')")
    assert page.locator("#rules-errors, #rule-form").get_by_role("alert").count() >= 1
    st, draft = api.get("/apps/editors2/draft")
    assert draft["rules"][0]["components"][0]["condition"] == "source == 'web'"
    assert not page.watch.dialogs and not page.watch.errors and not page.watch.foreign
