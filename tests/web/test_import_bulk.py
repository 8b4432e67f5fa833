"""Import at scale, on both back ends: a large CSV with 1% bad rows (100,000 rows on SQLite; 10,000 on
PostgreSQL, to keep the suite's time reasonable), the re-run with dedupe updating instead of
duplicating, and an all-or-nothing import that dies half-way (killed process, raised error) leaving
nothing behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from runtime import import_files, importer, publish
from runtime import system_tables as st_
from runtime.context import SYSTEM, Context
from tests.web.import_setup import count, imp_doc, upload

ROOT = Path(__file__).resolve().parents[2]


def big_csv(n: int, *, bump: int = 0) -> bytes:
    """n rows; every 100th has a bad employee count (1%)."""
    lines = ["编号,客户名称,员工数,邮箱,等级"]
    for i in range(n):
        employees = "many" if i % 100 == 42 else str(i % 1000 + bump)
        lines.append(f"K{i:07},客户{i},{employees},k{i}@example.cn,{'重要' if i % 2 else '普通'}")
    return ("\n".join(lines) + "\n").encode("utf-8-sig")


@pytest.mark.slow
def test_a_large_file_with_bad_rows_then_a_dedupe_rerun(api, make_app, flask_app, db_url):
    n = 100_000 if db_url.startswith("sqlite") else 10_000
    make_app(imp_doc())
    svc = flask_app.extensions["jimu"]
    st, out = upload(api, "customer", big_csv(n), mode="skip_bad_rows")
    assert st == 200, out
    bad = n // 100
    assert out["created"] == n - bad and out["error_rows"] == bad and out["rows"] == n
    assert len(out["errors"]) == bad
    assert [e["line"] for e in out["errors"][:3]] == [44, 144, 244]       # row i is on line i + 2
    assert {e["field"] for e in out["errors"]} == {"employees"} and out["errors"][0]["column"] == "员工数"
    assert count(svc) == n - bad
    # the same file again, values changed, dedupe on the unique code: updates, no duplicates
    st, again = upload(api, "customer", big_csv(n, bump=1), mode="skip_bad_rows", dedupe="code",
                       on_duplicate="update")
    assert st == 200, again
    assert (again["created"], again["updated"], again["error_rows"]) == (0, n - bad, bad)
    assert count(svc) == n - bad
    with svc.engine.connect() as conn:
        table = svc.catalog.get(conn, "imp").tables["customer"]
        row = conn.execute(sa.select(table).where(table.c.code == "K0000007")).mappings().one()
        assert row["employees"] == 8 and row["_version"] == 2 and row["size_band"] == 16
        versions = conn.execute(sa.select(table.c._version, sa.func.count()).group_by(table.c._version)).all()
        assert dict(versions) == {2: n - bad}
        updates = conn.execute(sa.select(sa.func.count()).select_from(st_.audit).where(
            st_.audit.c.app == "imp", st_.audit.c.action == "update")).scalar_one()
        assert updates == n - bad


def _install(db_url: str) -> None:
    from web.app import build_services
    svc = build_services(db_url, "Asia/Shanghai")
    with svc.engine.begin() as conn:
        ctx = Context(conn, SYSTEM)
        publish.create_app(ctx, imp_doc())
        publish.publish(ctx, svc.catalog, "imp")
    svc.engine.dispose()


def _leftovers(db_url: str) -> tuple[int, int]:
    from web.app import build_services
    svc = build_services(db_url, "Asia/Shanghai")
    try:
        with svc.engine.connect() as conn:
            audits = conn.execute(sa.select(sa.func.count()).select_from(st_.audit).where(
                st_.audit.c.app == "imp", st_.audit.c.action.in_(["create", "import"]))).scalar_one()
        return count(svc), audits
    finally:
        svc.engine.dispose()


def test_a_killed_all_or_nothing_import_leaves_nothing(db_url, tmp_path):
    _install(db_url)
    path = tmp_path / "big.csv"
    path.write_bytes(big_csv(60_000).replace(b",many,", b",7,"))      # all good: it would succeed
    env = {**os.environ, "JIMU_DATABASE_URL": db_url, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "web.cli", "import", "imp", "customer", str(path), "--batch", "500"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stderr.readline().decode()          # the first progress line: a batch is written
        assert "rows" in line, (line, proc.stderr.read().decode()[-2000:])
        time.sleep(0.5)                                  # a few more batches
        assert proc.poll() is None, "the import finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 20
    while True:   # PostgreSQL ends the dead client's transaction when it notices the closed socket
        try:
            assert _leftovers(db_url) == (0, 0)
            break
        except sa.exc.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_an_error_half_way_rolls_everything_back(services, monkeypatch):
    with services.engine.begin() as conn:
        ctx = Context(conn, SYSTEM)
        publish.create_app(ctx, imp_doc())
        publish.publish(ctx, services.catalog, "imp")
    real = services.records.write_created
    calls = []

    def dying(*args, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the disk is full")
        return real(*args, **kw)

    monkeypatch.setattr(services.records, "write_created", dying)
    sheet = import_files.open_sheet(big_csv(5_000).replace(b",many,", b",7,"), "a.csv")
    with pytest.raises(RuntimeError):
        with services.engine.begin() as conn:
            importer.run_import(services.records, Context(conn, SYSTEM), "imp", "customer", sheet,
                                importer.ImportOptions(mode="skip_bad_rows"))
    assert len(calls) == 3 and count(services) == 0
