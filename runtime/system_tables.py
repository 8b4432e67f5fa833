"""The runtime's own tables: people, tokens, audit/timeline, physical names, counters, timers,
outbox, notifications, flow instances, shares and the import page's kept uploads.

Record tables are not here: they are generated per entity by ``runtime.schema_sync``. The metadata
store's tables live in ``builder.store``; ``create_all`` creates both sets.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from builder.store import metadata as builder_metadata
from engines.column_types import UTCDateTime

metadata = sa.MetaData()
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

users = sa.Table(
    "jimu_users", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(80), nullable=False, unique=True),
    sa.Column("display_name", sa.String(200)),
    sa.Column("email", sa.String(320)),
    sa.Column("password_hash", sa.String(300)),
    sa.Column("role", sa.String(20), nullable=False, default="user"),   # admin | builder | user
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("locale", sa.String(10)),
    sa.Column("session_version", sa.Integer, nullable=False, default=1),  # bump = logout everywhere
    sa.Column("created_at", UTCDateTime, nullable=False),
)

teams = sa.Table(
    "jimu_teams", metadata,
    sa.Column("key", sa.String(40), primary_key=True),
    sa.Column("label", sa.String(200)),
    sa.Column("supervisor_id", BigId, sa.ForeignKey("jimu_users.id")),
    sa.Column("parent", sa.String(40)),
)

team_members = sa.Table(
    "jimu_team_members", metadata,
    sa.Column("team", sa.String(40), sa.ForeignKey("jimu_teams.key", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", BigId, sa.ForeignKey("jimu_users.id", ondelete="CASCADE"), primary_key=True),
)

app_roles = sa.Table(
    "jimu_app_roles", metadata,
    sa.Column("user_id", BigId, sa.ForeignKey("jimu_users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("app", sa.String(40), primary_key=True),
    sa.Column("role", sa.String(40), primary_key=True),
)

tokens = sa.Table(
    "jimu_tokens", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("user_id", BigId, sa.ForeignKey("jimu_users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scope", sa.String(10), nullable=False, default="write"),
    sa.Column("apps", sa.Text),                      # JSON list or NULL (all apps)
    sa.Column("expires_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
    sa.Column("last_used_at", UTCDateTime),
)

login_attempts = sa.Table(
    "jimu_login_attempts", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("subject", sa.String(200), nullable=False, index=True),  # "name:<n>" or "addr:<ip>"
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
)

# One append-only log: the audit trail and every record's timeline.
audit = sa.Table(
    "jimu_audit", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("user_id", BigId),
    sa.Column("action", sa.String(40), nullable=False),   # create|update|delete|transition|comment|rule|message|metadata|login|permission|...
    sa.Column("app", sa.String(40)),
    sa.Column("entity", sa.String(40)),
    sa.Column("record_id", BigId),
    sa.Column("summary", sa.String(500)),
    sa.Column("before", sa.Text),
    sa.Column("after", sa.Text),
    sa.Column("details", sa.Text),
    sa.Index("ix_jimu_audit_record", "app", "entity", "record_id", "id"),
    sa.Index("ix_jimu_audit_at", "at"),
)

# Physical names of record tables, by the stable id of their entity (or subtable field).
physical_tables = sa.Table(
    "jimu_tables", metadata,
    sa.Column("app", sa.String(40), primary_key=True),
    sa.Column("owner_id", sa.String(40), primary_key=True),   # entity id, or subtable field id
    sa.Column("table_name", sa.String(63), nullable=False, unique=True),
    sa.Column("kind", sa.String(10), nullable=False, default="entity"),
    sa.Column("retired", sa.Boolean, nullable=False, default=False),
)

# Retired columns keep their data under a hidden name until an explicit purge.
retired_columns = sa.Table(
    "jimu_retired_columns", metadata,
    sa.Column("app", sa.String(40), primary_key=True),
    sa.Column("field_id", sa.String(40), primary_key=True),
    sa.Column("owner_id", sa.String(40), nullable=False),
    sa.Column("column_name", sa.String(63), nullable=False),
    sa.Column("field", sa.Text, nullable=False),
    sa.Column("retired_at", UTCDateTime, nullable=False),
)

counters = sa.Table(
    "jimu_counters", metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

timers = sa.Table(
    "jimu_timers", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("app", sa.String(40)),
    sa.Column("entity", sa.String(40)),
    sa.Column("record_id", BigId),
    sa.Column("payload", sa.Text, nullable=False, default="{}"),
    sa.Column("status", sa.String(12), nullable=False, default="pending"),  # pending|running|done|failed|cancelled
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("claimed_by", sa.String(80)),
    sa.Column("claimed_at", UTCDateTime),
    sa.Column("done_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Index("ix_jimu_timers_due", "status", "due_at"),
    sa.Index("ix_jimu_timers_record", "app", "entity", "record_id"),
)

outbox = sa.Table(
    "jimu_outbox", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("channel", sa.String(20), nullable=False),   # notify | email | webhook
    sa.Column("app", sa.String(40)),
    sa.Column("entity", sa.String(40)),
    sa.Column("record_id", BigId),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(12), nullable=False, default="pending"),  # pending|sent|failed|dead
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("sent_at", UTCDateTime),
    sa.Index("ix_jimu_outbox_pending", "status", "next_attempt_at"),
)

notifications = sa.Table(
    "jimu_notifications", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("user_id", BigId, sa.ForeignKey("jimu_users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("app", sa.String(40)),
    sa.Column("entity", sa.String(40)),
    sa.Column("record_id", BigId),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("read_at", UTCDateTime),
    sa.Index("ix_jimu_notifications_user", "user_id", "read_at"),
)

flow_instances = sa.Table(
    "jimu_flow_instances", metadata,
    sa.Column("app", sa.String(40), primary_key=True),
    sa.Column("entity", sa.String(40), primary_key=True),
    sa.Column("record_id", BigId, primary_key=True),
    sa.Column("flow", sa.String(40), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("state", sa.String(200), nullable=False),
    sa.Column("sla", sa.Text, nullable=False, default="[]"),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

tasks = sa.Table(
    "jimu_tasks", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(20), nullable=False),          # task | approval
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("app", sa.String(40)),
    sa.Column("entity", sa.String(40)),
    sa.Column("record_id", BigId),
    sa.Column("assignee_id", BigId, sa.ForeignKey("jimu_users.id", ondelete="SET NULL")),
    sa.Column("status", sa.String(20), nullable=False, default="open"),  # open|done|approved|rejected|cancelled
    sa.Column("due_at", UTCDateTime),
    sa.Column("payload", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("completed_at", UTCDateTime),
    sa.Column("completed_by", BigId),
    sa.Column("comment", sa.Text),
    sa.Index("ix_jimu_tasks_assignee", "assignee_id", "status"),
)

shares = sa.Table(
    "jimu_shares", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("app", sa.String(40), nullable=False),
    sa.Column("entity", sa.String(40), nullable=False),
    sa.Column("record_id", BigId, nullable=False),
    sa.Column("user_id", BigId, sa.ForeignKey("jimu_users.id", ondelete="CASCADE")),
    sa.Column("team", sa.String(40), sa.ForeignKey("jimu_teams.key", ondelete="CASCADE")),
    sa.Column("access", sa.String(10), nullable=False, default="read"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", BigId),
    sa.Index("ix_jimu_shares_record", "app", "entity", "record_id"),
)

public_tokens = sa.Table(
    "jimu_public_tokens", metadata,
    sa.Column("token", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(10), nullable=False),   # form | survey
    sa.Column("app", sa.String(40), nullable=False),
    sa.Column("form", sa.String(40), nullable=False),
    sa.Column("payload", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime),
    sa.Column("used_at", UTCDateTime),
)

rate_hits = sa.Table(
    "jimu_rate_hits", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("bucket", sa.String(200), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_jimu_rate_hits", "bucket", "at"),
)

saved_views = sa.Table(
    "jimu_saved_views", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("user_id", BigId, sa.ForeignKey("jimu_users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("app", sa.String(40), nullable=False),
    sa.Column("entity", sa.String(40), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("query", sa.Text, nullable=False),
)

import_uploads = sa.Table(   # files kept between the import page's steps (runtime.import_uploads)
    "jimu_import_uploads", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", BigId, sa.ForeignKey("jimu_users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("app", sa.String(40), nullable=False),
    sa.Column("entity", sa.String(40), nullable=False),
    sa.Column("filename", sa.String(255), nullable=False, default=""),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_jimu_import_uploads_user", "user_id", "created_at"),
)


def create_all(engine: Engine) -> None:
    """Create the metadata store's and the runtime's own tables (idempotent)."""
    builder_metadata.create_all(engine)
    metadata.create_all(engine)
