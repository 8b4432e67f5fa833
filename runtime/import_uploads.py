"""Files kept between the two steps of the import page: upload, then map the columns and import.

Why the database: web processes are stateless and may run on several machines, so step 2 may
reach another process than step 1; a row in ``jimu_import_uploads`` is seen by all of them, and
nothing is ever written to or read from a path on disk. Why not post the file again: the browser
cannot fill a file input, so the user would have to pick the file twice.

The safety rules this module owns:

- the id is made here (32 random URL-safe characters) and is the only thing the page carries;
  an id of any other shape (``../x``, a path, a name) is refused before any lookup;
- a kept file belongs to one user, app and entity and is found only by all four, so an id copied
  from someone else finds nothing;
- only users who may create records of the entity keep or use a file, and the file is checked
  (``import_files.open_sheet``: size, kind, encoding, header) before it is kept;
- files expire after ``TTL``; whenever a file is kept, expired ones (of everyone) and all but the
  newest ``KEEP_PER_USER`` of this user are deleted; an import that wrote its rows deletes its
  file in the same transaction.

Reading rows is ``runtime.import_files``'s, the import ``runtime.importer``'s, HTTP ``web``'s.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from engines.errors import BadRequest, NotFound

from . import system_tables as st
from .context import Context
from .import_files import Sheet, open_sheet
from .permissions import require
from .records import RecordsService

TTL = timedelta(hours=1)
KEEP_PER_USER = 3
_ID = re.compile(r"^[A-Za-z0-9_-]{32}$")


@dataclass
class KeptFile:
    id: str
    filename: str
    size: int
    sheet: Sheet


def _may_import(svc: RecordsService, ctx: Context, app_key: str, entity_key: str) -> None:
    capp = svc.app(ctx, app_key)
    entity = capp.entity(entity_key)
    require(svc.access(ctx, capp, entity_key), "create", entity.label)


def _display_name(filename: str | None) -> str:
    """The file's own name, for showing only (never a path: folders and control characters dropped)."""
    name = re.split(r"[\\/]", filename or "")[-1]
    return "".join(ch for ch in name if ch.isprintable())[:255]


def keep(svc: RecordsService, ctx: Context, app_key: str, entity_key: str, data: bytes,
         filename: str | None) -> KeptFile:
    """Check the file and keep it for this user; answers its id and its opened sheet."""
    _may_import(svc, ctx, app_key, entity_key)
    sheet = open_sheet(data, filename)
    t = st.import_uploads
    uid = ctx.actor.id
    ctx.conn.execute(t.delete().where(t.c.created_at < ctx.now - TTL))
    newest = sa.select(t.c.id).where(t.c.user_id == uid).order_by(t.c.created_at.desc(), t.c.id) \
        .limit(KEEP_PER_USER - 1)
    kept = [r[0] for r in ctx.conn.execute(newest)]
    ctx.conn.execute(t.delete().where(t.c.user_id == uid, t.c.id.not_in(kept)))
    upload_id = secrets.token_urlsafe(24)
    name = _display_name(filename)
    ctx.conn.execute(t.insert().values(id=upload_id, user_id=uid, app=app_key, entity=entity_key, filename=name,
                                       size=len(data), data=data, created_at=ctx.now))
    return KeptFile(upload_id, name, len(data), sheet)


def check_id(upload_id: str | None) -> str:
    if not isinstance(upload_id, str) or not _ID.match(upload_id):
        raise BadRequest("This is not an upload of this page; upload the file again / 无效的上传编号，请重新上传文件",
                         {"upload": ["invalid"]})
    return upload_id


def load(svc: RecordsService, ctx: Context, app_key: str, entity_key: str, upload_id: str | None) -> KeptFile:
    """The kept file of this user for this app and entity, opened again."""
    _may_import(svc, ctx, app_key, entity_key)
    upload_id = check_id(upload_id)
    t = st.import_uploads
    row = ctx.conn.execute(sa.select(t.c.filename, t.c.size, t.c.data).where(
        t.c.id == upload_id, t.c.user_id == ctx.actor.id, t.c.app == app_key, t.c.entity == entity_key,
        t.c.created_at >= ctx.now - TTL)).first()
    if row is None:
        raise NotFound("The uploaded file has expired or is not yours; upload it again "
                       "/ 上传的文件已过期或不属于你，请重新上传", {"upload": ["not found"]})
    return KeptFile(upload_id, row.filename, row.size, open_sheet(bytes(row.data), row.filename))


def discard(ctx: Context, upload_id: str) -> None:
    t = st.import_uploads
    ctx.conn.execute(t.delete().where(t.c.id == upload_id, t.c.user_id == ctx.actor.id))
