"""The per-process cache of published apps, compiled once per revision.

``Catalog.get`` does one indexed read of the app's published revision number per call and reloads
the compiled app (typed model, SQLAlchemy tables, expression environments, compiled expressions)
only when another process published. Nothing else is cached.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from builder import store
from builder.validation import field_env
from engines import expressions as ex
from engines.errors import NotFound
from engines.model import App, Entity

from .schema_sync import build_tables, load_physical


@dataclass
class CompiledApp:
    revision: int
    doc: dict
    app: App
    tz: ZoneInfo
    tables: dict[str, sa.Table]
    subtables: dict[tuple[str, str], sa.Table]
    dialect: str = "sqlite"
    created_at: datetime | None = None       # of the app's row: an app installed again is another app
    envs: dict[str, dict] = field(default_factory=dict)
    exprs: ex.ExpressionCache = field(default_factory=ex.ExpressionCache)

    @property
    def key(self) -> str:
        return self.app.key

    def entity(self, key: str) -> Entity:
        entity = self.app.entity(key)
        if entity is None:
            raise NotFound(f"No entity {key!r} in app {self.app.key!r} / 实体不存在", {"entity": key})
        return entity

    def table(self, key: str) -> sa.Table:
        self.entity(key)
        return self.tables[key]

    def env(self, entity_key: str) -> dict:
        if entity_key not in self.envs:
            self.envs[entity_key] = field_env(self.app, self.entity(entity_key))
        return self.envs[entity_key]

    def compile(self, text: str, entity_key: str, *, expect=None, allow_prev: bool = False) -> ex.Compiled:
        return self.exprs.get(text, self.env(entity_key), f"{entity_key}@{self.revision}",
                              expect=expect, allow_prev=allow_prev)

    # the table provider interface that reports use
    def column(self, entity_key: str, field_key: str):
        return self.table(entity_key).c[field_key]


class Catalog:
    def __init__(self, default_tz: str = "Asia/Shanghai"):
        self.default_tz = default_tz
        self._apps: dict[str, CompiledApp] = {}
        self._lock = threading.Lock()

    def get(self, conn: Connection, app_key: str) -> CompiledApp:
        apps = store.apps_table
        row = conn.execute(sa.select(apps.c.published_revision, apps.c.created_at)
                           .where(apps.c.key == app_key)).first()
        if row is None:
            raise NotFound(f"No app {app_key!r} / 应用不存在", {"app": app_key})
        number = row.published_revision
        if number == 0:
            raise NotFound(f"App {app_key!r} is not published yet / 应用尚未发布", {"app": app_key})
        cached = self._apps.get(app_key)
        # an app uninstalled and installed again numbers its revisions from 1 again: its creation
        # time tells the two apart
        if cached is not None and cached.revision == number and cached.created_at == row.created_at:
            return cached
        compiled = self.load(conn, app_key, number)
        compiled.created_at = row.created_at
        with self._lock:
            self._apps[app_key] = compiled
        return compiled

    def load(self, conn: Connection, app_key: str, number: int) -> CompiledApp:
        doc = store.get_revision(conn, app_key, number)
        app = App.from_dict(doc)
        _md, tables, subs = build_tables(app, load_physical(conn, app_key))
        tz = ZoneInfo(app.timezone or self.default_tz)
        return CompiledApp(revision=number, doc=doc, app=app, tz=tz, tables=tables, subtables=subs,
                           dialect=conn.dialect.name)

    def forget(self, app_key: str) -> None:
        with self._lock:
            self._apps.pop(app_key, None)
