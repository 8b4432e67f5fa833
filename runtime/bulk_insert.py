"""Many rows into one table in one statement: the bulk path under record creates, imports and audit.

Owns how a batch is inserted and how the new ids are learnt, per dialect. On SQLite the batch goes
to the driver's ``executemany`` directly: the INSERT is compiled once from the Core construct (no
SQL is written by hand), and each column's own bind processor (the dialect's and our column
types') converts its values, once per distinct object, so a timestamp shared by the whole batch is
formatted once instead of once per row. Elsewhere the Core ``insert()`` with executemany is used.
"""
from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is built and written.

    A batch allocates a few dicts per record and frees them by reference counting; the collector
    still walks every tracked object of the process each time allocations pile up, which measured
    at about a quarter of a bulk create's time (bench/records.py). It runs again, as it was, when
    the batch is done; where something else turned it off, it stays off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _sqlite_plan(conn: Connection, table: sa.Table, keys: tuple[str, ...]):
    """The compiled INSERT and, per positional parameter, its column key and bind processor."""
    cache = table.info.setdefault("_bulk_insert_plans", {})
    plan = cache.get(keys)
    if plan is None:
        dialect = conn.dialect
        compiled = table.insert().compile(dialect=dialect, column_keys=list(keys))
        order = compiled.positiontup or []
        if sorted(order) != sorted(keys):
            return None     # not a plain one-parameter-per-column statement: let Core do it
        procs = [(k, table.c[k].type.dialect_impl(dialect).bind_processor(dialect)) for k in order]
        plan = (str(compiled), procs)
        cache[keys] = plan
    return plan


def _sqlite_params(procs, rows: Sequence[dict]) -> list[tuple]:
    columns = []
    for key, proc in procs:
        values = [r[key] for r in rows]
        if proc is not None:
            last_in: Any = object()
            last_out: Any = None
            converted = []
            for v in values:
                if v is None:
                    converted.append(None)
                    continue
                if v is not last_in:
                    last_in, last_out = v, proc(v)
                converted.append(last_out)
            values = converted
        columns.append(values)
    return list(zip(*columns, strict=True))


def insert_many(conn: Connection, table: sa.Table, rows: Sequence[dict]) -> None:
    """Insert rows that all have the same keys, as one executemany."""
    if not rows:
        return
    if conn.dialect.name == "sqlite" and conn.dialect.paramstyle == "qmark":
        keys = tuple(rows[0])
        plan = _sqlite_plan(conn, table, keys)
        if plan is not None:
            sql, procs = plan
            conn.exec_driver_sql(sql, _sqlite_params(procs, rows))
            return
    conn.execute(table.insert(), list(rows))


def insert_rows(conn: Connection, table: sa.Table, rows: list[dict]) -> list[int]:
    """Insert rows (all with the same keys) as one executemany; answers their new ids, in order.

    An ordered ``RETURNING`` costs SQLite a statement per row and PostgreSQL an INSERT … SELECT …
    ORDER BY per batch, several times a plain executemany; so ids are known another way there.
    """
    if conn.dialect.name == "sqlite":
        # one writer at a time (BEGIN IMMEDIATE): the rowids one executemany gives are consecutive
        insert_many(conn, table, rows)
        last = conn.exec_driver_sql("SELECT last_insert_rowid()").scalar_one()
        return list(range(last - len(rows) + 1, last + 1))
    if len(rows) == 1:      # one row: one round trip
        return [conn.execute(table.insert().returning(table.c.id), rows[0]).scalar_one()]
    if conn.dialect.name == "postgresql":
        seq = sa.func.pg_get_serial_sequence(table.name, "id")
        ids = sorted(conn.execute(sa.select(sa.func.nextval(seq)).select_from(
            sa.func.generate_series(1, len(rows)))).scalars())
        conn.execute(table.insert(), [{**r, "id": rid} for r, rid in zip(rows, ids, strict=True)])
        return ids
    result = conn.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True), rows)
    return [r[0] for r in result]
