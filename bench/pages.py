"""Server-rendered list page and JSON list endpoint vs a bare Flask route running the same raw SQL.

    python bench/pages.py [--rows 1000000] [--seconds 3] [--rounds 5]

Builds an entity of ``--rows`` generated records (SQLite in a temporary folder), then measures,
in process through each app's test client, requests per second of:

- the list page ``/apps/bench/lead?filter=…&sort=…`` (50 rows, filtered and sorted, signed in);
- the JSON list ``/api/v1/apps/bench/lead?filter=…&sort=…&page_size=50`` (same session);
- a bare Flask route that runs the very SQL statements the records service ran for that list
  (captured from the engine: the count and the page query, with the same parameters) and answers
  the rows as JSON — the floor of any list built on those queries.

It prints each rate, the ratio to the bare route (target ≥ 0.5), and the record page's p50
latency. Figures are medians of several rounds; read the ratios, the machine is small and noisy.
"""
from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402
from flask import Flask, jsonify  # noqa: E402

from runtime import publish, users  # noqa: E402
from runtime.context import SYSTEM, Context  # noqa: E402
from web.app import create_app  # noqa: E402

REGIONS = [f"r{i:02d}" for i in range(100)]
APP = {"app": "bench", "label": "性能", "entities": [{"key": "lead", "label": "线索", "title_field": "name", "fields": [
    {"key": "name", "type": "text", "label": "名称", "required": True},
    {"key": "region", "type": "select", "label": "地区", "options": REGIONS, "indexed": True},
    {"key": "stage", "type": "select", "label": "阶段",
     "options": [{"value": "new", "label": "新线索"}, {"value": "won", "label": "成交"}, {"value": "lost", "label": "流失"}]},
    {"key": "amount", "type": "currency", "label": "金额"},
    {"key": "email", "type": "email", "label": "邮箱"},
    {"key": "since", "type": "date", "label": "日期"},
]}]}
FILTER = "region == 'r42'"
SORT = "-amount"
PASSWORD = "bench-password-1"


def build(url: str, rows: int) -> Flask:
    app = create_app({"JIMU_DATABASE_URL": url, "SECRET_KEY": "bench"})
    svc = app.extensions["jimu"]
    with svc.engine.begin() as conn:
        ctx = Context(conn, SYSTEM)
        publish.create_app(ctx, APP)
        publish.publish(ctx, svc.catalog, "bench")
        users.create_user(conn, "bencher", PASSWORD, "admin")
        capp = svc.catalog.get(conn, "bench")
    table = capp.tables["lead"]
    rnd = random.Random(7)
    now = datetime.now(UTC)
    start = time.perf_counter()
    batch = 20_000
    for lo in range(0, rows, batch):
        data = [{"name": f"客户{i}", "region": REGIONS[i % 100], "stage": ("new", "won", "lost")[i % 3],
                 "amount": Decimal(rnd.randint(0, 10_000_000)) / 100, "email": f"u{i}@example.cn",
                 "since": (now - timedelta(days=i % 900)).date(), "created_at": now, "updated_at": now,
                 "created_by": 1, "updated_by": 1, "owner": 1, "_version": 1}
                for i in range(lo, min(lo + batch, rows))]
        with svc.engine.begin() as conn:
            conn.execute(table.insert(), data)
    print(f"generated {rows:,} records in {time.perf_counter() - start:.1f} s")
    return app


def sign_in(app: Flask):
    client = app.test_client()
    html = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    resp = client.post("/login", data={"username": "bencher", "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 302, resp.text
    return client


def captured_sql(app: Flask, client, path: str) -> list[tuple[str, object]]:
    """The list statements (count + page) the records service runs for ``path``."""
    engine = app.extensions["jimu"].engine
    table = app.extensions["jimu"].catalog._apps["bench"].tables["lead"].name
    seen: list[tuple[str, object]] = []

    def listen(_conn, _cursor, statement, parameters, _context, _many):
        if table in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", listen)
    try:
        assert client.get(path).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", listen)
    return seen[:2]


def bare_app(engine, statements) -> Flask:
    bare = Flask("bare")

    @bare.get("/raw")
    def raw():
        with engine.connect() as conn:
            total = conn.exec_driver_sql(*statements[0]).scalar()
            rows = [dict(r._mapping) for r in conn.exec_driver_sql(*statements[1])]
        return jsonify({"items": [{k: (str(v) if v is not None and not isinstance(v, (int, float, str)) else v)
                                   for k, v in r.items()} for r in rows], "total": total})

    return bare


def rate(client, path: str, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        resp = client.get(path)
        assert resp.status_code == 200, resp.status_code
        n += 1
    return n / (time.perf_counter() - start)


def interleaved(targets: dict, seconds: float, rounds: int) -> dict[str, float]:
    """Median rate of each target over rounds that take turns, so that noise hits all alike."""
    rates: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, (client, path) in targets.items():
            rates[name].append(rate(client, path, seconds))
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    app = build(url, args.rows)
    client = sign_in(app)
    query = f"filter={FILTER}&sort={SORT}"
    page = f"/apps/bench/lead?{query}"
    api = f"/api/v1/apps/bench/lead?{query}&page_size=50"
    html = client.get(page).text
    assert html.count('<tr>') >= 51, "the page should show 50 rows"
    statements = captured_sql(app, client, api)
    bare = bare_app(app.extensions["jimu"].engine, statements).test_client()
    assert len(bare.get("/raw").get_json()["items"]) == 51     # LIMIT 51: one more tells "there is a next page"

    rates = interleaved({"bare": (bare, "/raw"), "page": (client, page), "api": (client, api)},
                        args.seconds, args.rounds)
    r_bare, r_page, r_api = rates["bare"], rates["page"], rates["api"]
    ids = [random.Random(3).randint(1, args.rows) for _ in range(200)]
    times = []
    for rid in ids:
        t = time.perf_counter()
        assert client.get(f"/apps/bench/lead/{rid}").status_code == 200
        times.append(time.perf_counter() - t)
    print(f"records: {args.rows:,} · filter {FILTER!r} · sort {SORT!r} · 50 rows · SQLite · in-process clients")
    print(f"bare Flask route, same raw SQL : {r_bare:8.1f} req/s")
    print(f"list page (server-rendered)    : {r_page:8.1f} req/s   ratio {r_page / r_bare:5.2f}  (target >= 0.5)")
    print(f"JSON list endpoint             : {r_api:8.1f} req/s   ratio {r_api / r_bare:5.2f}  (target >= 0.5)")
    print(f"record page p50                : {statistics.median(times) * 1000:8.2f} ms  (p90 "
          f"{sorted(times)[int(len(times) * 0.9)] * 1000:.2f} ms)")


if __name__ == "__main__":
    main()
