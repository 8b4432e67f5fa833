"""What the record benchmarks share: a throwaway database and an app published into it.

SQLite in a temporary folder, or, given a PostgreSQL URL, a schema of its own dropped afterwards.
"""
from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from runtime import publish
from runtime.context import SYSTEM, Context
from web.app import build_services


@contextmanager
def bench_database(postgres: str | None) -> Iterator[str]:
    """The URL of an empty database: a fresh PostgreSQL schema when ``postgres`` is given."""
    if not postgres:
        yield f"sqlite:///{tempfile.mkdtemp()}/bench.db"
        return
    schema = "bench_" + uuid.uuid4().hex[:8]
    base = postgres.replace("postgresql://", "postgresql+psycopg://")
    eng = sa.create_engine(base)
    with eng.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))   # a generated name
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with eng.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        eng.dispose()


def published(url: str, app: dict):
    """The services of ``url`` with ``app`` created and published."""
    svc = build_services(url, "Asia/Shanghai")
    with svc.engine.begin() as conn:
        ctx = Context(conn, SYSTEM)
        publish.create_app(ctx, app)
        publish.publish(ctx, svc.catalog, app["app"])
    return svc
