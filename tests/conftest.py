"""Shared fixtures: databases (SQLite and the real PostgreSQL), apps and clients.

`db_url` / `engine` are parametrized over SQLite and PostgreSQL. PostgreSQL comes from
JIMU_TEST_POSTGRES_URL (default: the local server); each test gets its own schema, dropped after.
Where PostgreSQL is unreachable the PostgreSQL half is skipped, unless JIMU_TEST_STRICT=1 (set by
.ci/run), which turns that skip into a failure.
"""
from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("JIMU_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
STRICT = os.environ.get("JIMU_TEST_STRICT") == "1"


def _normalise_pg(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def skip_or_fail(reason: str):
    if STRICT:
        pytest.fail(f"{reason} (JIMU_TEST_STRICT=1 turns this skip into a failure)")
    pytest.skip(reason)


_pg_ok: dict[str, bool] = {}


def pg_available() -> bool:
    if "ok" not in _pg_ok:
        try:
            eng = sa.create_engine(_normalise_pg(PG_URL))
            with eng.connect() as c:
                c.execute(sa.text("select 1"))
            eng.dispose()
            _pg_ok["ok"] = True
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            _pg_ok["ok"] = False
    return _pg_ok["ok"]


def make_pg_url() -> tuple[str, str]:
    """A fresh schema on the test PostgreSQL and a URL whose search_path points at it."""
    schema = "t_" + uuid.uuid4().hex[:12]
    eng = sa.create_engine(_normalise_pg(PG_URL))
    with eng.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))  # generated name, not user text
    eng.dispose()
    base = _normalise_pg(PG_URL)
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", schema


def drop_pg_schema(schema: str) -> None:
    eng = sa.create_engine(_normalise_pg(PG_URL))
    with eng.begin() as c:
        c.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A database URL of an empty database: SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/jimu.db"
        return
    if not pg_available():
        skip_or_fail(f"PostgreSQL not reachable at {PG_URL}")
    url, schema = make_pg_url()
    try:
        yield url
    finally:
        drop_pg_schema(schema)


@pytest.fixture
def engine(db_url):
    """A SQLAlchemy Engine on an empty database (both back ends)."""
    from runtime.db import create_db_engine

    eng = create_db_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def services(db_url):
    """The services (engine, catalog, records) on an empty database of both back ends."""
    from web.app import build_services

    svc = build_services(db_url, "Asia/Shanghai")
    yield svc
    svc.engine.dispose()


@pytest.fixture
def flask_app(db_url):
    from web.app import create_app

    app = create_app({"JIMU_DATABASE_URL": db_url, "SECRET_KEY": "test-secret", "TESTING": True})
    yield app
    app.extensions["jimu"].engine.dispose()


class Api:
    """A JSON client for /api/v1 acting with a bearer token."""

    def __init__(self, client, token: str | None):
        self.client = client
        self.token = token

    def _headers(self, headers=None):
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(headers or {})
        return h

    def call(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None):
        kw = {"headers": self._headers(headers)}
        if raw is not None:
            kw["data"] = raw
            kw["content_type"] = "application/json"
        elif body is not None:
            kw["json"] = body
        resp = self.client.open("/api/v1" + path, method=method, **kw)
        return resp.status_code, (resp.get_json(silent=True) if resp.data else None)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.call("PUT", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.call("PATCH", path, body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


def make_user(flask_app, name: str, role: str = "user", **kw) -> dict:
    from runtime import users

    with flask_app.extensions["jimu"].engine.begin() as conn:
        if users.find_user(conn, name) is None:
            users.create_user(conn, name, "Passw0rd-" + name, role, **kw)
        row = users.find_user(conn, name)
        token = users.create_token(conn, row.id, "test")["token"]
    return {"id": row.id, "name": name, "token": token, "password": "Passw0rd-" + name}


@pytest.fixture
def api(flask_app):
    """An admin's API client."""
    admin = make_user(flask_app, "admin", "admin")
    return Api(flask_app.test_client(), admin["token"])


@pytest.fixture
def login_as(flask_app):
    """login_as(name, role='user', **kw) -> Api acting as that user (created when missing)."""
    def _login(name: str, role: str = "user", **kw) -> Api:
        user = make_user(flask_app, name, role, **kw)
        return Api(flask_app.test_client(), user["token"])
    return _login


@pytest.fixture
def make_app(api):
    """make_app(doc) creates and publishes an app over the API; answers the publish result."""
    def _make(doc: dict) -> dict:
        st, body = api.post("/apps", doc)
        assert st == 201, body
        st, body = api.post(f"/apps/{doc['app']}/publish", {})
        assert st == 200, body
        return body
    return _make
