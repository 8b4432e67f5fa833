"""What ``jimu demo`` installs: the built-in packs with sample data when available, else the
example app built through the records service."""
from __future__ import annotations

from builder import store
from runtime import publish
from runtime.context import SYSTEM, Context

EXAMPLE_APP = {
    "app": "crm",
    "label": "客户管理 CRM",
    "entities": [
        {"key": "customer", "label": "客户", "title_field": "name", "fields": [
            {"key": "name", "type": "text", "label": "名称", "required": True},
            {"key": "industry", "type": "select", "label": "行业",
             "options": [{"value": "manufacturing", "label": "制造业"}, {"value": "retail", "label": "零售"},
                         {"value": "it", "label": "信息技术"}]},
            {"key": "email", "type": "email", "label": "邮箱"},
            {"key": "phone", "type": "phone", "label": "电话"},
        ]},
        {"key": "ticket", "label": "工单", "title_field": "subject", "fields": [
            {"key": "subject", "type": "text", "label": "主题", "required": True},
            {"key": "customer", "type": "lookup", "label": "客户", "target": "customer"},
            {"key": "severity", "type": "select", "label": "级别", "default": "low",
             "options": [{"value": "low", "label": "低"}, {"value": "high", "label": "高"}]},
        ]},
    ],
}


def install_content(svc) -> None:
    try:
        from templates_library.install import install_builtin_packs
    except ImportError:
        install_builtin_packs = None
    if install_builtin_packs is not None:
        install_builtin_packs(svc, with_sample_data=True)
        return
    with svc.engine.begin() as conn:
        ctx = Context(conn, SYSTEM)
        if store.app_exists(conn, "crm"):
            return
        publish.create_app(ctx, EXAMPLE_APP)
        publish.publish(ctx, svc.catalog, "crm")
        customers = svc.records.create_many(ctx, "crm", "customer", [
            {"name": "华东精密机械有限公司", "industry": "manufacturing", "email": "info@huadong.example.cn"},
            {"name": "北辰零售", "industry": "retail", "phone": "+86 21 5555 0101"},
        ])
        svc.records.create(ctx, "crm", "ticket", {"subject": "设备无法启动", "customer": customers[0]["id"],
                                                  "severity": "high"})
