"""The explicit context every service call takes: connection, acting user, clock.

No thread-locals: web builds an ``Actor`` from the session or token and passes a ``Context`` down.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class Actor:
    id: int | None
    name: str
    role: str = "user"                       # admin | builder | user | system | public
    teams: frozenset[str] = frozenset()
    supervised_teams: frozenset[str] = frozenset()
    app_roles: dict[str, frozenset[str]] = field(default_factory=dict)
    token_scope: str | None = None           # read | write when acting through an API token
    token_apps: frozenset[str] | None = None

    @property
    def is_admin(self) -> bool:
        return self.role in ("admin", "system")

    @property
    def can_build(self) -> bool:
        return self.role in ("admin", "builder", "system")

    def roles_in(self, app: str) -> frozenset[str]:
        return self.app_roles.get(app, frozenset())


SYSTEM = Actor(id=None, name="system", role="system")


@dataclass
class Context:
    conn: Connection
    actor: Actor
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def with_actor(self, actor: Actor) -> Context:
        return Context(self.conn, actor, self.now)
