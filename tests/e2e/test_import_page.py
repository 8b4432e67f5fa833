"""In a real browser: from the list, import a small UTF-8 CSV with 中文 headers, accept the
suggested mapping, and find the records in the list; markup in a cell stays text."""
from __future__ import annotations

import pytest

from .conftest import login, screenshot

pytestmark = pytest.mark.e2e

XSS = "<img src=x onerror=alert(1)>"

APP = {
    "app": "shop", "label": "门店",
    "entities": [{"key": "customer", "label": "客户", "title_field": "name", "fields": [
        {"key": "name", "type": "text", "label": "客户名称", "required": True},
        {"key": "city", "type": "text", "label": "城市"},
        {"key": "level", "type": "select", "label": "等级",
         "options": [{"value": "vip", "label": "贵宾"}, {"value": "normal", "label": "普通"}]},
        {"key": "since", "type": "date", "label": "签约日期"},
        {"key": "notes", "type": "textarea", "label": "备注"},
    ]}],
}

CSV = ("客户名称,城市,等级,签约日期,备注\n"
       "华东精密机械,上海,贵宾,2026/1/31,老客户\n"
       f"北辰零售,北京,普通,2025-12-01,\"{XSS}\"\n").encode()

UNNAMED = """() => [...document.querySelectorAll('#main input:not([type=hidden]), #main select, #main button')]
  .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
  .map((e) => e.outerHTML.slice(0, 120))"""


def test_import_a_csv_from_the_list(page, server):
    api = server.api()
    st, body = api.post("/apps", APP)
    assert st == 201, body
    st, body = api.post("/apps/shop/publish", {})
    assert st == 200, body

    login(page)
    page.goto("/apps/shop/customer")
    page.get_by_role("link", name="导入").click()
    page.wait_for_url("**/apps/shop/customer/import")
    assert "50 MB" in page.inner_text("#upload-form")
    page.set_input_files("#file", files=[{"name": "客户.csv", "mimeType": "text/csv", "buffer": CSV}])
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#map-form")
    assert page.evaluate(UNNAMED) == []
    chosen = {page.inner_text(f'label[for="map-{i}"]'): page.input_value(f"#map-{i}") for i in range(5)}
    assert chosen == {"客户名称": "name", "城市": "city", "等级": "level", "签约日期": "since", "备注": "notes"}
    assert "华东精密机械" in page.inner_text("table.preview")
    screenshot(page, "import-mapping.png")

    page.click("#map-form button[value=import]")
    page.wait_for_selector("#import-result")
    assert page.inner_text("#count-created") == "2" and page.inner_text("#count-errors") == "0"
    page.get_by_role("link", name="查看记录").click()
    page.wait_for_url("**/apps/shop/customer")
    table = page.inner_text("table.records")
    assert "华东精密机械" in table and "北辰零售" in table and "贵宾" in table
    assert page.locator('img[src="x"]').count() == 0
    assert page.watch.dialogs == [] and page.watch.errors == [] and page.watch.foreign == []
