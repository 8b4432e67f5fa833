"""Shared data for the report-engine tests: a small sales app, its tables and a seeded dataset.

Column names deliberately differ from field keys (``c_<key>``) so that the engine must go through
the table provider. Datetimes are stored as naive UTC by this file's own TypeDecorator. Expected
values in the tests are computed independently, in Python over ``ORDERS`` or by hand-written SQL.
"""
from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

from engines.model import App

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 15, 4, 0, tzinfo=UTC)          # 2026-03-15 12:00 in Shanghai


class NaiveUTC(TypeDecorator):
    """Stores naive UTC; answers aware UTC."""
    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class Money(TypeDecorator):
    """NUMERIC(18, 2): exact on PostgreSQL; on SQLite stored with numeric affinity, read as Decimal."""
    impl = sa.Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Numeric(18, 2, asdecimal=False))
        return dialect.type_descriptor(sa.Numeric(18, 2))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return str(value) if dialect.name == "sqlite" else Decimal(str(value))

    def process_result_value(self, value, dialect):
        return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


APP_DICT = {
    "app": "sales", "label": "销售",
    "entities": [
        {"key": "customer", "label": "客户", "title_field": "name", "fields": [
            {"key": "name", "type": "text", "label": "名称"},
            {"key": "industry", "type": "select", "label": "行业",
             "options": ["manufacturing", "retail", {"value": "finance", "label": "金融"}]},
            {"key": "region", "type": "text", "label": "区域"}]},
        {"key": "order", "label": "订单", "fields": [
            {"key": "customer", "type": "lookup", "target": "customer", "label": "客户"},
            {"key": "status", "type": "select", "label": "状态",
             "options": ["new", "contacted", "qualified", "proposal", "won", "lost"]},
            {"key": "amount", "type": "currency", "label": "金额"},
            {"key": "qty", "type": "number", "label": "数量"},
            {"key": "ordered_at", "type": "datetime", "label": "下单时间"},
            {"key": "due_on", "type": "date", "label": "截止日期"},
            {"key": "note", "type": "text", "label": "备注"},
            {"key": "vip", "type": "boolean", "label": "VIP"}]},
        {"key": "survey", "label": "满意度调查", "fields": [
            {"key": "score", "type": "number", "label": "推荐度"},
            {"key": "csat", "type": "rating", "label": "满意度"}]},
    ],
    "reports": [
        {"key": "by_status", "label": "按状态", "entity": "order", "group_by": ["status"],
         "measures": [{"agg": "count"}, {"agg": "sum", "field": "amount", "label": "金额合计"}], "chart": "bar"},
        {"key": "funnel", "label": "销售漏斗", "kind": "funnel", "entity": "order", "stage_field": "status",
         "stages": ["new", "contacted", "qualified", "proposal", "won"]},
        {"key": "nps", "label": "NPS", "kind": "kpi", "entity": "survey", "measure": {"nps": "score"}},
        {"key": "by_month", "label": "月度", "entity": "order",
         "group_by": [{"field": "ordered_at", "bucket": "month"}], "measures": [{"agg": "count"}], "chart": "line"},
        {"key": "broken", "entity": "order", "group_by": ["nope"]},
    ],
    "dashboards": [
        {"key": "sales", "label": "销售看板", "widgets": [
            {"report": "by_status", "width": 6}, {"report": "funnel", "width": 6},
            {"report": "nps", "width": 3}, {"report": "by_month", "width": 12, "date_field": "ordered_at"},
            {"report": "missing"}, {"report": "broken"}]},
    ],
}


def make_app(**changes) -> App:
    return App.from_dict({**APP_DICT, **changes})


def make_tables() -> tuple[sa.MetaData, dict[str, sa.Table]]:
    md = sa.MetaData()

    def system():
        return [sa.Column("id", sa.Integer, primary_key=True), sa.Column("c_created_at", NaiveUTC),
                sa.Column("c_owner", sa.Integer)]

    customer = sa.Table("e_sales_customer", md, *system(), sa.Column("c_name", sa.String(200)),
                        sa.Column("c_industry", sa.String(100)), sa.Column("c_region", sa.String(100)))
    order = sa.Table("e_sales_order", md, *system(), sa.Column("c_customer", sa.Integer),
                     sa.Column("c_status", sa.String(50)), sa.Column("c_amount", Money),
                     sa.Column("c_qty", sa.Float), sa.Column("c_ordered_at", NaiveUTC),
                     sa.Column("c_due_on", sa.Date), sa.Column("c_note", sa.Text), sa.Column("c_vip", sa.Boolean))
    survey = sa.Table("e_sales_survey", md, *system(), sa.Column("c_score", sa.Float),
                      sa.Column("c_csat", sa.Integer))
    return md, {"customer": customer, "order": order, "survey": survey}


class Tables:
    """The table provider the engine expects: ``table(entity)`` and ``column(entity, field)``."""

    def __init__(self, tables: dict[str, sa.Table]):
        self.tables = tables

    def table(self, entity_key: str) -> sa.Table:
        return self.tables[entity_key]

    def column(self, entity_key: str, field_key: str) -> sa.Column:
        t = self.tables[entity_key]
        return t.c.id if field_key == "id" else t.c[f"c_{field_key}"]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


CUSTOMERS = [
    {"id": 1, "name": "Acme", "industry": "manufacturing", "region": "east"},
    {"id": 2, "name": "Beta 贸易", "industry": "retail", "region": "east"},
    {"id": 3, "name": "Gamma", "industry": "finance", "region": "north"},
    {"id": 4, "name": "<img src=x onerror=alert(1)>", "industry": None, "region": None},
]

# ordered_at is UTC. 2026-01-31T20:00Z is 2026-02-01 04:00 in Shanghai (February);
# 2025-12-31T16:30Z is 2026-01-01 00:30 in Shanghai (January, Q1, 2026).
ORDERS = [
    dict(id=1, customer=1, status="won", amount="1200.50", qty=3, ordered_at=utc(2026, 1, 5, 2, 0), due_on=date(2026, 1, 20), owner=1, vip=True, note="=HYPERLINK(\"http://x\")"),
    dict(id=2, customer=1, status="won", amount="800.00", qty=1, ordered_at=utc(2026, 1, 31, 20, 0), due_on=date(2026, 2, 1), owner=1, vip=False, note="中文备注"),
    dict(id=3, customer=1, status="proposal", amount="300.25", qty=2, ordered_at=utc(2026, 3, 10, 9, 0), due_on=date(2026, 3, 31), owner=2, vip=False),
    dict(id=4, customer=2, status="qualified", amount="150.00", qty=5, ordered_at=utc(2025, 12, 31, 16, 30), due_on=date(2026, 1, 1), owner=2, vip=True),
    dict(id=5, customer=2, status="won", amount="99.99", qty=1, ordered_at=utc(2026, 2, 14, 12, 0), due_on=None, owner=1, vip=None),
    dict(id=6, customer=2, status="lost", amount="500.00", qty=4, ordered_at=utc(2026, 2, 28, 15, 59), due_on=date(2026, 3, 1), owner=3, vip=False),
    dict(id=7, customer=3, status="new", amount=None, qty=None, ordered_at=utc(2026, 3, 1, 1, 0), due_on=date(2026, 3, 5), owner=3, vip=False),
    dict(id=8, customer=3, status="contacted", amount="42.00", qty=2, ordered_at=utc(2025, 11, 15, 8, 0), due_on=date(2025, 12, 1), owner=1, vip=True),
    dict(id=9, customer=4, status="new", amount="10.00", qty=1, ordered_at=utc(2026, 3, 14, 23, 0), due_on=date(2026, 3, 20), owner=2, vip=False),
    dict(id=10, customer=None, status=None, amount="7.77", qty=7, ordered_at=None, due_on=None, owner=None, vip=None),
    dict(id=11, customer=4, status="contacted", amount="60.00", qty=3, ordered_at=utc(2026, 2, 28, 16, 1), due_on=date(2026, 2, 27), owner=1, vip=False),
    dict(id=12, customer=1, status="qualified", amount="0.01", qty=0.5, ordered_at=utc(2026, 1, 1, 0, 0), due_on=date(2026, 1, 2), owner=2, vip=True),
]

# NPS: promoters (9-10): 3, passives (7-8): 2, detractors (0-6): 3, blank: 1 -> (3 - 3) / 8 = 0.
# CSAT 1-5: 4 or 5 on 4 of 6 answers -> 66.67%.
SURVEYS = [
    dict(id=1, score=10, csat=5), dict(id=2, score=9, csat=4), dict(id=3, score=9, csat=None),
    dict(id=4, score=8, csat=3), dict(id=5, score=7, csat=5), dict(id=6, score=6, csat=1),
    dict(id=7, score=0, csat=4), dict(id=8, score=3, csat=None), dict(id=9, score=None, csat=None),
]


def _row(values: dict, prefix_keys) -> dict:
    return {("id" if k == "id" else f"c_{k}"): v for k, v in values.items() if k in prefix_keys}


def seed(engine, *, orders=ORDERS, customers=CUSTOMERS, surveys=SURVEYS, created=utc(2026, 1, 10)):
    """Create the tables on ``engine`` and insert the dataset; returns the provider."""
    md, tables = make_tables()
    md.create_all(engine)
    with engine.begin() as conn:
        if customers:
            conn.execute(tables["customer"].insert(),
                         [{**_row(c, c.keys()), "c_created_at": created, "c_owner": 1} for c in customers])
        if orders:
            conn.execute(tables["order"].insert(),
                         [{**_row({"note": None, **o}, ["note", *o]), "c_created_at": o["ordered_at"] or created,
                           "c_amount": None if o["amount"] is None else Decimal(o["amount"])} for o in orders])
        if surveys:
            conn.execute(tables["survey"].insert(),
                         [{**_row(s, s.keys()), "c_created_at": created, "c_owner": 1} for s in surveys])
    return Tables(tables)
