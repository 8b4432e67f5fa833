"""The bulk insert under record creates, imports and audit stores exactly what a Core insert stores.

On SQLite it bypasses Core's per-row parameter processing, so every column type of the field
registry is compared value by value with a Core insert of the same rows, on both databases.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from engines.column_types import ExactDecimal, JSONList, UTCDateTime
from runtime.bulk_insert import insert_many, insert_rows
from runtime.db import create_db_engine


def _table(name: str) -> tuple[sa.MetaData, sa.Table]:
    md = sa.MetaData()
    t = sa.Table(name, md,
                 sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                 sa.Column("name", sa.String(255)),
                 sa.Column("at", UTCDateTime()),
                 sa.Column("day", sa.Date()),
                 sa.Column("amount", ExactDecimal(2)),
                 sa.Column("ratio", sa.Float(53)),
                 sa.Column("tags", JSONList()),
                 sa.Column("flag", sa.Boolean()),
                 sa.Column("ref", sa.Integer))
    return md, t


def _rows(n: int) -> list[dict]:
    shared = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)       # one object shared by every row
    east8 = timezone(timedelta(hours=8))
    out = []
    for i in range(n):
        out.append({
            "name": ["客户'; DROP TABLE x;--", "O'Brien", "", None][i % 4] if i % 5 else f"名{i}",
            "at": shared if i % 3 else (None if i % 2 else datetime(2026, 1, 1, 8, i % 60, tzinfo=east8)),
            "day": None if i % 7 == 0 else date(2026, 1 + i % 12, 1 + i % 28),
            "amount": None if i % 6 == 0 else Decimal(f"{i * 37 % 10000}.{i % 100:02d}"),
            "ratio": None if i % 4 == 0 else i / 7,
            "tags": None if i % 2 else ["甲", f"t{i % 3}"],
            "flag": [True, False, None][i % 3],
            "ref": None if i % 9 == 0 else i,
        })
    return out


@pytest.fixture
def eng(db_url):
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


def _read(conn, t) -> list[dict]:
    return [dict(r) for r in conn.execute(sa.select(t).order_by(t.c.id)).mappings()]


def test_same_values_as_a_core_insert(eng):
    md, fast = _table("bulk_fast")
    _, core = _table("bulk_core")
    core.to_metadata(md)
    md.create_all(eng)
    rows = _rows(300)
    with eng.begin() as conn:
        ids = insert_rows(conn, fast, rows)
        conn.execute(md.tables["bulk_core"].insert(), rows)
    with eng.connect() as conn:
        got, want = _read(conn, fast), _read(conn, md.tables["bulk_core"])
    assert ids == [r["id"] for r in got]
    assert len(got) == 300
    for g, w in zip(got, want, strict=True):
        assert {k: v for k, v in g.items() if k != "id"} == {k: v for k, v in w.items() if k != "id"}
    # the values themselves, not only the agreement of two paths
    assert got[4]["name"] == "客户'; DROP TABLE x;--" and got[1]["name"] == "O'Brien" and got[0]["name"] == "名0"
    assert got[1]["at"] == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert got[0]["at"] == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)   # +08:00 stored as UTC
    assert got[1]["amount"] == Decimal("37.01") and got[0]["amount"] is None
    assert got[0]["tags"] == ["甲", "t0"] and got[0]["flag"] is True and got[2]["flag"] is None


def test_ids_follow_each_batch_in_order(eng):
    md, t = _table("bulk_ids")
    md.create_all(eng)
    with eng.begin() as conn:
        first = insert_rows(conn, t, _rows(5))
        second = insert_rows(conn, t, _rows(3))
    with eng.connect() as conn:
        names = {r.id: r.ref for r in conn.execute(sa.select(t.c.id, t.c.ref))}
    assert first + second == sorted(names)
    assert [names[i] for i in second] == [None, 1, 2]


@pytest.mark.parametrize("rows", [[], [{"name": "x"}]], ids=["nothing", "one column only"])
def test_partial_and_empty_batches(eng, rows):
    md, t = _table("bulk_small")
    md.create_all(eng)
    with eng.begin() as conn:
        insert_many(conn, t, rows)
    with eng.connect() as conn:
        assert [r["name"] for r in _read(conn, t)] == [r["name"] for r in rows]


def test_a_python_side_default_falls_back_to_core(eng):
    md = sa.MetaData()
    t = sa.Table("bulk_default", md, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("name", sa.String(50)), sa.Column("kind", sa.String(20), default="plain"))
    md.create_all(eng)
    with eng.begin() as conn:
        insert_many(conn, t, [{"name": "a"}, {"name": "b"}])
    with eng.connect() as conn:
        assert [(r.name, r.kind) for r in conn.execute(sa.select(t).order_by(t.c.id))] == [("a", "plain"), ("b", "plain")]


def test_collection_resumes_after_a_batch_even_a_failed_one():
    import gc

    from runtime.bulk_insert import gc_paused
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("the batch failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()     # turned off by someone else: left off
    finally:
        gc.enable()
