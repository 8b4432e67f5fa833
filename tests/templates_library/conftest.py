"""Fixtures of the pack tests: a second, empty database beside the test's own."""
from __future__ import annotations

import pytest

from tests.conftest import drop_pg_schema, make_pg_url
from web.app import build_services


@pytest.fixture
def fresh_services(db_url, tmp_path):
    """A second, empty database on the same back end as ``db_url``."""
    made = []

    def _make():
        if db_url.startswith("sqlite"):
            url, schema = f"sqlite:///{tmp_path}/fresh{len(made)}.db", None
        else:
            url, schema = make_pg_url()
        svc = build_services(url, "Asia/Shanghai")
        made.append((svc, schema))
        return svc

    yield _make
    for svc, schema in made:
        svc.engine.dispose()
        if schema:
            drop_pg_schema(schema)
