"""SQLAlchemy column types that give the same values on SQLite and PostgreSQL.

``UTCDateTime`` stores naive UTC and answers aware UTC datetimes; ``ExactDecimal`` stores SQL
NUMERIC (native on PostgreSQL, numeric affinity on SQLite) and answers ``Decimal`` quantised to its
scale; ``JSONList`` stores a list as JSON text (multiselect). No connections are opened here.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ExactDecimal(TypeDecorator):
    impl = sa.Numeric
    cache_ok = True

    def __init__(self, scale: int = 2, precision: int = 20):
        super().__init__()
        self.scale = scale
        self.precision = precision
        self._quant = Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            # SQLite has no decimal type: keep SQLAlchemy from converting (and warning); we
            # quantise ourselves on the way out.
            return dialect.type_descriptor(sa.Numeric(self.precision, self.scale, asdecimal=False))
        return dialect.type_descriptor(sa.Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = Decimal(str(value)).quantize(self._quant)
        if dialect.name == "sqlite":
            return str(value)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return Decimal(str(value)).quantize(self._quant)


class JSONList(TypeDecorator):
    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return json.dumps(list(value), ensure_ascii=False)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        try:
            data = json.loads(value)
        except ValueError:
            return []
        return data if isinstance(data, list) else []
