"""Building small packs in tests: a test app in two versions, folders and zip bytes."""
from __future__ import annotations

import copy
import io
import zipfile
from pathlib import Path

from templates_library.safe_yaml import dump_yaml


def helpdesk_app(version: str = "1.0.0") -> dict:
    """A small app with a lookup, a rule, a form, a report and permissions; 1.1.0 changes it."""
    app = {
        "app": "helpdesk",
        "label": "服务台",
        "timezone": "Asia/Shanghai",
        "roles": ["agent", "lead"],
        "entities": [
            {"key": "customer", "label": "客户", "title_field": "name", "fields": [
                {"key": "name", "type": "text", "label": "客户名称", "required": True},
                {"key": "level", "type": "select", "label": "等级", "default": "normal",
                 "options": [{"value": "normal", "label": "普通"}, {"value": "vip", "label": "VIP"}]},
                {"key": "fax", "type": "text", "label": "传真"},
            ]},
            {"key": "request", "label": "请求", "title_field": "subject", "fields": [
                {"key": "subject", "type": "text", "label": "主题", "required": True},
                {"key": "customer", "type": "lookup", "label": "客户", "target": "customer"},
                {"key": "priority", "type": "select", "label": "优先级", "default": "low",
                 "options": [{"value": "low", "label": "低"}, {"value": "high", "label": "高"}]},
                {"key": "topics", "type": "multiselect", "label": "主题分类",
                 "options": [{"value": "billing", "label": "账单"}, {"value": "tech", "label": "技术"}]},
                {"key": "amount", "type": "currency", "label": "金额", "min": 0},
            ]},
        ],
        "forms": [{"key": "intake", "label": "受理", "entity": "request",
                   "layout": [{"section": "基本信息", "columns": 2, "fields": ["subject", "customer", "priority"]}]}],
        "rules": [
            {"key": "vip_high", "kind": "compute", "entity": "request", "target": "priority",
             "expression": "'high' if customer.level == 'vip' else 'low'"},
            {"key": "route", "kind": "assign", "entity": "request", "target": "owner", "on": ["create"],
             "routes": [{"condition": "priority == 'high'", "to": "team:vip_desk", "strategy": "round_robin"}],
             "fallback": {"to": "team:front_desk", "strategy": "least_loaded"}},
        ],
        "reports": [{"key": "by_priority", "label": "按优先级", "entity": "request", "group_by": ["priority"],
                     "measures": [{"agg": "count", "label": "数量"}], "chart": "bar"}],
        "dashboards": [{"key": "desk", "label": "看板", "widgets": [{"report": "by_priority", "width": 6}]}],
        "permissions": [{"role": "agent", "entity": "request", "create": True, "read": "own", "update": "own"},
                        {"role": "lead", "entity": "*", "create": True, "read": "all", "update": "all"}],
    }
    if version == "1.0.0":
        return app
    new = copy.deepcopy(app)
    customer, request = new["entities"]
    customer["fields"][0]["label"] = "客户全称"                                   # the deliberate conflict
    customer["fields"] = [f for f in customer["fields"] if f["key"] != "fax"]     # retired
    customer["fields"].append({"key": "city", "type": "text", "label": "城市"})   # added
    request["fields"][2]["options"].append({"value": "urgent", "label": "紧急"})   # changed upstream only
    new["reports"].append({"key": "by_customer", "label": "按客户", "entity": "request",
                           "group_by": ["customer"], "measures": [{"agg": "count", "label": "数量"}]})
    new["dashboards"][0]["widgets"].append({"report": "by_customer", "width": 6})
    return new


CUSTOMERS = "name,level,fax\n华东精密机械,vip,021-5555\n北辰零售,normal,\n"
REQUESTS = ("subject,customer,topics,amount\n设备无法启动,1,tech,120.5\n发票抬头错误,2,billing;tech,\n"
            "再次报修,1,,0\n")


def pack_files(version: str = "1.0.0", *, app: dict | None = None, name: str = "helpdesk",
               sample: dict[str, str] | None = None, extra: dict[str, str | bytes] | None = None) -> dict:
    """The files of a pack: {relative path: text or bytes}."""
    if sample is None:
        customers = CUSTOMERS if version == "1.0.0" else "name,level,city\n华东精密机械,vip,上海\n北辰零售,normal,\n"
        sample = {"customer": customers, "request": REQUESTS}
    manifest = {"pack": name, "format_version": 1, "version": version, "title": "服务台 · Help desk",
                "requires": {"jimu": ">=0.1"}, "app": app or helpdesk_app(version)}
    if sample:
        manifest["sample_data"] = {e: f"data/{e}.csv" for e in sample}
    files: dict[str, str | bytes] = {"pack.yaml": dump_yaml(manifest)}
    files.update({f"data/{e}.csv": text for e, text in sample.items()})
    files.update(extra or {})
    return files


def write_folder(root: Path, files: dict) -> Path:
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return root


def zip_bytes(files: dict, *, top: str | None = "pack") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, content in files.items():
            name = f"{top}/{rel}" if top and not rel.startswith("/") and ".." not in rel else rel
            zf.writestr(name, content.encode("utf-8") if isinstance(content, str) else content)
    return buf.getvalue()
