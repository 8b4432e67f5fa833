"""Records service bulk create vs raw SQLAlchemy Core insert of the same rows into the same table.

    python bench/records.py [--rows 100000] [--postgres URL]

Prints rows/s of both and their ratio (target: the service within 3x of raw Core on SQLite), and
the p50 latency of a single-record create over the HTTP API (Flask test client, in process).
Medians of several runs; the machine is small and noisy, so read ratios, not absolute figures.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bench_db import bench_database, published  # noqa: E402

from runtime.context import SYSTEM, Context  # noqa: E402

APP = {"app": "bench", "label": "bench", "entities": [{"key": "lead", "label": "线索", "title_field": "name", "fields": [
    {"key": "name", "type": "text", "label": "名称", "required": True},
    {"key": "email", "type": "email", "label": "邮箱"},
    {"key": "source", "type": "select", "label": "来源", "options": ["website", "expo", "referral"]},
    {"key": "budget", "type": "currency", "label": "预算"},
    {"key": "visits", "type": "number", "label": "访问"},
    {"key": "since", "type": "date", "label": "日期"},
]}]}


def rows(n: int, offset: int = 0) -> list[dict]:
    src = ["website", "expo", "referral"]
    return [{"name": f"客户{i + offset}", "email": f"u{i + offset}@example.cn", "source": src[i % 3],
             "budget": f"{(i * 37) % 100000}.50", "visits": i % 20, "since": "2026-01-15"} for i in range(n)]


def bench_service(svc, n: int) -> float:
    data = rows(n, offset=time.monotonic_ns() % 10_000_000)
    t = time.perf_counter()
    with svc.engine.begin() as conn:
        ctx = Context(conn, SYSTEM)
        for i in range(0, n, 1000):
            svc.records.create_many(ctx, "bench", "lead", data[i:i + 1000])
    return n / (time.perf_counter() - t)


def bench_core(svc, n: int) -> float:
    with svc.engine.connect() as conn:
        capp = svc.catalog.get(conn, "bench")
    table = capp.tables["lead"]
    from datetime import UTC, date, datetime
    from decimal import Decimal
    now = datetime.now(UTC)
    data = [{**r, "budget": Decimal(r["budget"]), "since": date(2026, 1, 15), "created_at": now, "updated_at": now,
             "_version": 1} for r in rows(n)]
    t = time.perf_counter()
    with svc.engine.begin() as conn:
        for i in range(0, n, 1000):
            conn.execute(table.insert(), data[i:i + 1000])
    return n / (time.perf_counter() - t)


def api_latency(url: str, count: int = 200) -> float:
    from runtime import users
    from web.app import create_app
    app = create_app({"JIMU_DATABASE_URL": url, "SECRET_KEY": "bench"})
    with app.extensions["jimu"].engine.begin() as conn:
        name = "bench_" + uuid.uuid4().hex[:6]
        users.create_user(conn, name, "bench-password-1", "admin")
        token = users.create_token(conn, users.find_user(conn, name).id)["token"]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    times = []
    for i in range(count):
        t = time.perf_counter()
        resp = client.post("/api/v1/apps/bench/lead", json={"name": f"api{i}", "source": "website"}, headers=headers)
        times.append(time.perf_counter() - t)
        assert resp.status_code == 201, resp.get_json()
    return statistics.median(times) * 1000


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--postgres")
    args = p.parse_args()
    with bench_database(args.postgres) as url:
        svc = published(url, APP)
        service, core = [], []
        for _ in range(args.runs):
            core.append(bench_core(svc, args.rows))
            service.append(bench_service(svc, args.rows))
        s, c = statistics.median(service), statistics.median(core)
        print(f"database: {svc.engine.dialect.name}, rows per run: {args.rows}, runs: {args.runs}")
        print(f"raw Core insert      : {c:10.0f} rows/s (median)")
        print(f"records service bulk : {s:10.0f} rows/s (median)")
        print(f"ratio core/service   : {c / s:10.2f}x   (target <= 3x on SQLite)")
        print(f"API single create p50: {api_latency(url):10.2f} ms")
        svc.engine.dispose()

if __name__ == "__main__":
    main()
