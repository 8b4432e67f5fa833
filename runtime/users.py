"""People: users (argon2-hashed passwords), teams with supervisors, app roles, API tokens
(stored as SHA-256 hashes, shown once) and sign-in throttling.

Every change to people or permissions is written to the audit log. Sessions and HTTP are web's.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from engines.errors import Conflict, NotFound, PermissionDenied, RateLimited, Unauthorized, ValidationFailed
from engines.field_types import DATETIME_MAX

from . import audit
from . import system_tables as st
from .context import Actor, Context
from .ids import parse_id

PLATFORM_ROLES = ("admin", "builder", "user")
NAME_RE = re.compile(r"^[A-Za-z0-9_.@\-\u00c0-\uffff]{1,80}$")
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
APP_RE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
MAX_LIST = 1000                       # team keys or member names looked up in one query
_hasher = PasswordHasher()   # stateless and thread-safe: parameters only
THROTTLE_FAILS, THROTTLE_WINDOW = 10, timedelta(minutes=15)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_strength(password: Any) -> None:
    if not isinstance(password, str) or len(password) < 8 or len(password) > 1000:
        raise ValidationFailed("The password must be 8–1000 characters / 密码长度须为 8–1000 个字符",
                               {"password": ["must be 8–1000 characters / 长度须为 8–1000"]})


def _now() -> datetime:
    return datetime.now(UTC)


def require_admin(ctx: Context) -> None:
    if not ctx.actor.is_admin:
        raise PermissionDenied("Only admins may manage people and permissions / 仅管理员可管理人员与权限")


def user_dict(conn: Connection, row) -> dict:
    teams = [r.team for r in conn.execute(sa.select(st.team_members.c.team).where(st.team_members.c.user_id == row.id)
                                          .order_by(st.team_members.c.team))]
    roles: dict[str, list[str]] = {}
    for r in conn.execute(sa.select(st.app_roles).where(st.app_roles.c.user_id == row.id)
                          .order_by(st.app_roles.c.app, st.app_roles.c.role)):
        roles.setdefault(r.app, []).append(r.role)
    return {"id": row.id, "name": row.name, "display_name": row.display_name, "email": row.email,
            "role": row.role, "active": row.active, "locale": row.locale, "teams": teams, "app_roles": roles}


def _validate_user_body(body: Any, *, partial: bool) -> dict:
    if not isinstance(body, dict):
        raise ValidationFailed("The body must be a JSON object / 请求体必须是对象", {"_body": ["must be an object"]})
    errors: dict[str, list[str]] = {}
    known = {"name", "password", "role", "teams", "app_roles", "display_name", "email", "active", "locale"}
    for k in body:
        if k not in known:
            errors.setdefault(str(k), []).append("unknown field / 未知字段")
    if not partial or "name" in body:
        if not isinstance(body.get("name"), str) or not NAME_RE.match(body.get("name") or ""):
            errors.setdefault("name", []).append("1–80 letters, digits, _ . @ - / 用户名格式无效")
    if "role" in body and body["role"] not in PLATFORM_ROLES:
        errors.setdefault("role", []).append(f"must be one of {', '.join(PLATFORM_ROLES)} / 平台角色无效")
    if "teams" in body and (not isinstance(body["teams"], list) or len(body["teams"]) > MAX_LIST
                            or not all(isinstance(t, str) for t in body["teams"])):
        errors.setdefault("teams", []).append(f"must be a list of at most {MAX_LIST} team keys / 必须是团队键列表")
    if "app_roles" in body:
        ar = body["app_roles"]
        if not isinstance(ar, dict) or not all(isinstance(k, str) and APP_RE.match(k) and isinstance(v, list)
                                               and all(isinstance(x, str) and KEY_RE.match(x) for x in v)
                                               for k, v in ar.items()):
            errors.setdefault("app_roles", []).append('must be like {"complaints": ["agent"]} / 格式无效')
    for k, most in (("display_name", 200), ("email", 200), ("locale", 10)):   # the columns' widths
        if k in body and body[k] is not None and (not isinstance(body[k], str) or len(body[k]) > most):
            errors.setdefault(k, []).append(f"must be text of at most {most} characters / 必须是文本（最多 {most} 字）")
    if "active" in body and not isinstance(body["active"], bool):
        errors.setdefault("active", []).append("must be true or false")
    if "password" in body:
        try:
            check_password_strength(body["password"])
        except ValidationFailed as exc:
            errors.update(exc.details)
    elif not partial:
        errors.setdefault("password", []).append("is required / 必填")
    if errors:
        raise ValidationFailed("Invalid user / 用户信息无效", errors)
    return body


def create_user(conn: Connection, name: str, password: str | None, role: str = "user", *,
                teams: list[str] | None = None, app_roles: dict | None = None, actor_id: int | None = None,
                display_name: str | None = None, email: str | None = None) -> dict:
    body = {"name": name, "role": role, "teams": teams or [], "app_roles": app_roles or {}}
    if password is not None:
        body["password"] = password
    _validate_user_body(body, partial=password is None)
    try:
        with conn.begin_nested():
            rid = conn.execute(st.users.insert().values(
                name=name, display_name=display_name or name, email=email,
                password_hash=hash_password(password) if password else None, role=role, active=True,
                session_version=1, created_at=_now())).inserted_primary_key[0]
    except IntegrityError as exc:
        raise Conflict(f"A user named {name!r} exists already / 用户名已存在", {"name": ["already taken"]}) from exc
    _set_memberships(conn, rid, teams, app_roles)
    audit.write(conn, at=_now(), user_id=actor_id, action="permission", summary=f"created user {name} ({role})",
                after={"name": name, "role": role, "teams": teams or [], "app_roles": app_roles or {}})
    return get_user(conn, rid)


def _set_memberships(conn, uid: int, teams, app_roles) -> None:
    if teams is not None:
        known = {r.key for r in conn.execute(sa.select(st.teams.c.key).where(st.teams.c.key.in_(teams)))}
        missing = [t for t in teams if t not in known]
        if missing:
            raise ValidationFailed(f"Unknown team(s): {', '.join(missing)} / 团队不存在", {"teams": missing})
        conn.execute(st.team_members.delete().where(st.team_members.c.user_id == uid))
        for t in sorted(set(teams)):
            conn.execute(st.team_members.insert().values(team=t, user_id=uid))
    if app_roles is not None:
        conn.execute(st.app_roles.delete().where(st.app_roles.c.user_id == uid))
        for app, roles in app_roles.items():
            for role in sorted(set(roles)):
                conn.execute(st.app_roles.insert().values(user_id=uid, app=app, role=role))


def get_user(conn: Connection, uid: Any) -> dict:
    uid = parse_id(uid)
    if uid is None:
        raise NotFound("No such user / 用户不存在")
    row = conn.execute(sa.select(st.users).where(st.users.c.id == uid)).first()
    if row is None:
        raise NotFound("No such user / 用户不存在", {"id": uid})
    return user_dict(conn, row)


def find_user(conn: Connection, name: str):
    return conn.execute(sa.select(st.users).where(st.users.c.name == name)).first()


def list_users(conn: Connection) -> list[dict]:
    return [user_dict(conn, r) for r in conn.execute(sa.select(st.users).order_by(st.users.c.id))]


def api_create_user(ctx: Context, body: Any) -> dict:
    require_admin(ctx)
    _validate_user_body(body, partial=False)
    return create_user(ctx.conn, body["name"], body["password"], body.get("role", "user"), teams=body.get("teams"),
                       app_roles=body.get("app_roles"), actor_id=ctx.actor.id,
                       display_name=body.get("display_name"), email=body.get("email"))


def api_update_user(ctx: Context, uid: Any, body: Any) -> dict:
    require_admin(ctx)
    before = get_user(ctx.conn, uid)
    _validate_user_body(body, partial=True)
    values: dict[str, Any] = {k: body[k] for k in ("display_name", "email", "role", "active", "locale") if k in body}
    if "name" in body:
        values["name"] = body["name"]
    if "password" in body:
        values["password_hash"] = hash_password(body["password"])
    if "password" in body or body.get("active") is False or "role" in body:
        values["session_version"] = st.users.c.session_version + 1   # sign out everywhere
    if before["role"] == "admin" and before["active"] and (values.get("role", "admin") != "admin"
                                                           or values.get("active", True) is False):
        others = ctx.conn.execute(sa.select(sa.func.count()).select_from(st.users).where(
            st.users.c.role == "admin", st.users.c.active.is_(True), st.users.c.id != before["id"])).scalar_one()
        if not others:
            raise Conflict("This is the last active admin / 这是最后一个有效的管理员", {"role": ["last admin"]})
    try:
        with ctx.conn.begin_nested():
            if values:
                ctx.conn.execute(st.users.update().where(st.users.c.id == before["id"]).values(**values))
    except IntegrityError as exc:
        raise Conflict("That user name is taken / 用户名已存在", {"name": ["already taken"]}) from exc
    _set_memberships(ctx.conn, before["id"], body.get("teams"), body.get("app_roles"))
    after = get_user(ctx.conn, before["id"])
    changed = sorted(k for k in body if k != "password" and before.get(k) != after.get(k))
    if "password" in body:
        changed.append("password")
    audit.write(ctx.conn, at=_now(), user_id=ctx.actor.id, action="permission",
                summary=f"changed user {after['name']}: {', '.join(changed) or 'nothing'}",
                before={k: before.get(k) for k in changed if k != "password"},
                after={k: after.get(k) for k in changed if k != "password"},
                details={"user_id": before["id"], "changed": changed})
    return after


def list_teams(conn: Connection) -> list[dict]:
    return [team_dict(conn, r) for r in conn.execute(sa.select(st.teams).order_by(st.teams.c.key))]


def team_dict(conn, row) -> dict:
    members = [r.name for r in conn.execute(sa.select(st.users.c.name).join(
        st.team_members, st.team_members.c.user_id == st.users.c.id).where(st.team_members.c.team == row.key)
        .order_by(st.users.c.name))]
    sup = None
    if row.supervisor_id:
        sup = conn.execute(sa.select(st.users.c.name).where(st.users.c.id == row.supervisor_id)).scalar()
    return {"key": row.key, "label": row.label, "members": members, "supervisor": sup, "parent": row.parent}


def get_team(conn: Connection, key: str) -> dict:
    row = conn.execute(sa.select(st.teams).where(st.teams.c.key == key)).first()
    if row is None:
        raise NotFound("No such team / 团队不存在", {"key": key})
    return team_dict(conn, row)


def _team_body(conn, body: Any, *, partial: bool, self_key: str | None = None) -> tuple[dict, list[int] | None]:
    if not isinstance(body, dict):
        raise ValidationFailed("The body must be a JSON object / 请求体必须是对象", {"_body": ["must be an object"]})
    errors: dict[str, list[str]] = {}
    for k in body:
        if k not in ("key", "label", "members", "supervisor", "parent"):
            errors.setdefault(str(k), []).append("unknown field / 未知字段")
    if not partial and (not isinstance(body.get("key"), str) or not KEY_RE.match(body.get("key") or "")):
        errors.setdefault("key", []).append("lowercase letters, digits, _ / 键格式无效")
    if "label" in body and (not isinstance(body["label"], str) or len(body["label"]) > 200):
        errors.setdefault("label", []).append("must be text / 必须是文本")
    values: dict[str, Any] = {}
    member_ids = None
    names = body.get("members")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            errors.setdefault("members", []).append("must be a list of user names / 必须是用户名列表")
        else:
            found = {}
            for i in range(0, len(names), MAX_LIST):   # a database binds at most some 32k values at once
                found.update({r.name: r.id for r in conn.execute(sa.select(st.users.c.name, st.users.c.id)
                                                                 .where(st.users.c.name.in_(names[i:i + MAX_LIST])))})
            missing = [n for n in names if n not in found]
            if missing:
                errors.setdefault("members", []).append(f"unknown user(s): {', '.join(missing)} / 用户不存在")
            member_ids = sorted(set(found.values()))
    if body.get("supervisor") is not None:
        sup = find_user(conn, body["supervisor"]) if isinstance(body["supervisor"], str) else None
        if sup is None:
            errors.setdefault("supervisor", []).append("unknown user / 用户不存在")
        else:
            values["supervisor_id"] = sup.id
    elif "supervisor" in body:
        values["supervisor_id"] = None
    parent = body.get("parent")
    if parent is not None:
        if not isinstance(parent, str) or conn.execute(sa.select(st.teams.c.key).where(st.teams.c.key == parent)).first() is None:
            errors.setdefault("parent", []).append("unknown team / 团队不存在")
        elif parent == body.get("key") or (self_key is not None and _descends_from(conn, parent, self_key)):
            errors.setdefault("parent", []).append("would make a cycle / 会形成循环")
    if errors:
        raise ValidationFailed("Invalid team / 团队信息无效", errors)
    for k in ("label", "parent"):
        if k in body:
            values[k] = body[k]
    return values, member_ids


def _descends_from(conn, team: str, ancestor: str | None) -> bool:
    """Whether ``team`` is ``ancestor`` or one of its sub-teams."""
    parents = dict(conn.execute(sa.select(st.teams.c.key, st.teams.c.parent)).all())
    seen = set()
    while team is not None and team not in seen:
        if team == ancestor:
            return True
        seen.add(team)
        team = parents.get(team)
    return False


def api_create_team(ctx: Context, body: Any) -> dict:
    require_admin(ctx)
    values, members = _team_body(ctx.conn, body, partial=False)
    try:
        with ctx.conn.begin_nested():
            ctx.conn.execute(st.teams.insert().values(key=body["key"], label=values.get("label") or body["key"],
                                                      supervisor_id=values.get("supervisor_id"),
                                                      parent=values.get("parent")))
    except IntegrityError as exc:
        raise Conflict("That team exists already / 团队已存在", {"key": ["already taken"]}) from exc
    for uid in members or []:
        ctx.conn.execute(st.team_members.insert().values(team=body["key"], user_id=uid))
    after = get_team(ctx.conn, body["key"])
    audit.write(ctx.conn, at=_now(), user_id=ctx.actor.id, action="permission", summary=f"created team {body['key']}",
                after=after)
    return after


def api_update_team(ctx: Context, key: str, body: Any) -> dict:
    require_admin(ctx)
    before = get_team(ctx.conn, key)
    values, members = _team_body(ctx.conn, body, partial=True, self_key=key)
    values.pop("key", None)
    if values:
        ctx.conn.execute(st.teams.update().where(st.teams.c.key == key).values(**values))
    if members is not None:
        ctx.conn.execute(st.team_members.delete().where(st.team_members.c.team == key))
        for uid in members:
            ctx.conn.execute(st.team_members.insert().values(team=key, user_id=uid))
    after = get_team(ctx.conn, key)
    audit.write(ctx.conn, at=_now(), user_id=ctx.actor.id, action="permission", summary=f"changed team {key}",
                before=before, after=after)
    return after


def supervised_teams(conn: Connection, uid: int) -> frozenset[str]:
    """The teams a user supervises, and their sub-teams (``parent``), at any depth."""
    rows = conn.execute(sa.select(st.teams.c.key, st.teams.c.parent, st.teams.c.supervisor_id)).all()
    out = {r.key for r in rows if r.supervisor_id == uid}
    children: dict[str, list[str]] = {}
    for r in rows:
        if r.parent:
            children.setdefault(r.parent, []).append(r.key)
    todo = list(out)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return frozenset(out)


def load_actor(conn: Connection, uid: int, *, token_scope: str | None = None,
               token_apps: frozenset[str] | None = None) -> Actor | None:
    row = conn.execute(sa.select(st.users).where(st.users.c.id == uid)).first()
    if row is None or not row.active:
        return None
    teams = frozenset(r.team for r in conn.execute(sa.select(st.team_members.c.team)
                                                   .where(st.team_members.c.user_id == uid)))
    supervised = supervised_teams(conn, uid)
    roles: dict[str, set[str]] = {}
    for r in conn.execute(sa.select(st.app_roles).where(st.app_roles.c.user_id == uid)):
        roles.setdefault(r.app, set()).add(r.role)
    return Actor(id=row.id, name=row.name, role=row.role, teams=teams, supervised_teams=supervised,
                 app_roles={k: frozenset(v) for k, v in roles.items()}, token_scope=token_scope, token_apps=token_apps)


# ---------------------------------------------------------------- sign-in
def locked_until(conn: Connection, subject: str, now: datetime) -> datetime | None:
    """When a throttled subject may sign in again: 15 minutes after its 10th failure within 15 minutes."""
    times = [r.at for r in conn.execute(
        sa.select(st.login_attempts.c.at).where(
            st.login_attempts.c.subject == subject, st.login_attempts.c.ok.is_(False),
            st.login_attempts.c.at >= now - 2 * THROTTLE_WINDOW).order_by(st.login_attempts.c.at))]
    until = None
    for i in range(THROTTLE_FAILS - 1, len(times)):
        if times[i] - times[i - THROTTLE_FAILS + 1] <= THROTTLE_WINDOW:
            until = times[i] + THROTTLE_WINDOW
    return until if until is not None and until > now else None


def _attempt(conn: Connection, name: Any, password: Any, address: str | None) -> Actor | None:
    now = _now()
    name = name if isinstance(name, str) else ""
    subjects = [f"name:{name[:80]}"] + ([f"addr:{address[:150]}"] if address else [])
    if any(locked_until(conn, s, now) is not None for s in subjects):
        # refused without checking the password, and not counted: the lock does not grow
        raise RateLimited("Too many failed sign-ins; try again in 15 minutes / 登录失败次数过多，请 15 分钟后再试")
    row = find_user(conn, name) if name else None
    ok = False
    if row is not None and row.active and row.password_hash and isinstance(password, str) \
            and len(password) <= 1000:
        try:
            ok = _hasher.verify(row.password_hash, password)
        except (VerificationError, InvalidHashError):
            ok = False
    for s in subjects:
        conn.execute(st.login_attempts.insert().values(subject=s, at=now, ok=ok))
    if not ok:   # keep the table small: older attempts can no longer lock anyone
        conn.execute(st.login_attempts.delete().where(st.login_attempts.c.at < now - 2 * THROTTLE_WINDOW,
                                                      st.login_attempts.c.subject.in_(subjects)))
    audit.write(conn, at=now, user_id=row.id if row is not None else None, action="login",
                summary=f"sign-in {'succeeded' if ok else 'failed'} for {name[:80]}",
                details={"address": address, "ok": ok})
    if not ok:
        return None
    return load_actor(conn, row.id)


def authenticate(conn: Connection, name: Any, password: Any, address: str | None) -> Actor:
    """The actor for a name and password, or Unauthorized; throttled per name and per address.

    A failure is recorded in ``conn``'s transaction: a caller that rolls back on the error loses
    the record, so sign-in pages use ``sign_in``, which commits it first.
    """
    actor = _attempt(conn, name, password, address)
    if actor is None:
        raise Unauthorized("Wrong user name or password / 用户名或密码错误")
    return actor


def sign_in(engine: Engine, name: Any, password: Any, address: str | None) -> tuple[Actor, int]:
    """``authenticate`` in its own committed transaction: (actor, session version) or an error."""
    with engine.begin() as conn:
        actor = _attempt(conn, name, password, address)
        version = session_version(conn, actor.id) if actor is not None else None
    if actor is None:
        raise Unauthorized("Wrong user name or password / 用户名或密码错误")
    return actor, version


def session_version(conn: Connection, uid: int) -> int | None:
    return conn.execute(sa.select(st.users.c.session_version).where(st.users.c.id == uid,
                                                                     st.users.c.active.is_(True))).scalar()


def logout_everywhere(conn: Connection, uid: int) -> None:
    conn.execute(st.users.update().where(st.users.c.id == uid).values(session_version=st.users.c.session_version + 1))


def sign_out_everywhere(ctx: Context, uid: Any) -> dict:
    """An admin ends every session of a user (API tokens stay valid: revoke them one by one)."""
    require_admin(ctx)
    user = get_user(ctx.conn, uid)
    logout_everywhere(ctx.conn, user["id"])
    audit.write(ctx.conn, at=_now(), user_id=ctx.actor.id, action="permission",
                summary=f"signed out {user['name']} everywhere", details={"user_id": user["id"]})
    return user


# ---------------------------------------------------------------- tokens
def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(conn: Connection, user_id: int, name: str = "token", scope: str = "write",
                 apps: list[str] | None = None, expires_at: datetime | None = None) -> dict:
    token = "jimu_" + secrets.token_urlsafe(32)
    rid = conn.execute(st.tokens.insert().values(
        user_id=user_id, name=name, token_hash=_token_hash(token), scope=scope,
        apps=json.dumps(apps) if apps is not None else None, expires_at=expires_at,
        created_at=_now())).inserted_primary_key[0]
    audit.write(conn, at=_now(), user_id=user_id, action="token", summary=f"created API token {name} ({scope})")
    return {"id": rid, "name": name, "scope": scope, "apps": apps,
            "expires_at": expires_at.isoformat() if expires_at else None, "token": token}


def api_create_token(ctx: Context, body: Any) -> dict:
    if ctx.actor.id is None:
        raise Unauthorized("Sign in first / 请先登录")
    if ctx.actor.token_scope is not None:
        raise PermissionDenied("Tokens cannot create tokens / 令牌不能创建令牌")
    if not isinstance(body, dict):
        raise ValidationFailed("The body must be a JSON object / 请求体必须是对象", {"_body": ["must be an object"]})
    errors: dict[str, list[str]] = {}
    for k in body:
        if k not in ("name", "scope", "apps", "expires_at"):
            errors.setdefault(str(k), []).append("unknown field / 未知字段")
    name = body.get("name", "token")
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        errors.setdefault("name", []).append("must be 1–200 characters / 名称长度 1–200")
    scope = body.get("scope", "write")
    if scope not in ("read", "write"):
        errors.setdefault("scope", []).append("must be read or write / 必须是 read 或 write")
    apps = body.get("apps")
    if apps is not None and (not isinstance(apps, list) or not all(isinstance(a, str) for a in apps)):
        errors.setdefault("apps", []).append("must be a list of app keys / 必须是应用键列表")
    expires = None
    if body.get("expires_at") is not None:
        try:
            expires = datetime.fromisoformat(str(body["expires_at"]).replace("Z", "+00:00"))
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=UTC)
            expires = expires.astimezone(UTC)
            if expires <= _now():
                errors.setdefault("expires_at", []).append("is in the past / 已过期")
            elif expires > DATETIME_MAX:     # shown in every time zone: a day's margin before year 10000
                errors.setdefault("expires_at", []).append("must be before 9999-12-31 / 须早于 9999-12-31")
        except (ValueError, OverflowError):     # OverflowError: 9999-12-31T23:59-14:00 is past year 9999 in UTC
            errors.setdefault("expires_at", []).append("must be an ISO 8601 date and time / 日期格式无效")
    if errors:
        raise ValidationFailed("Invalid token request / 令牌请求无效", errors)
    return create_token(ctx.conn, ctx.actor.id, name, scope, apps, expires)


def list_tokens(conn: Connection, user_id: int, *, include_revoked: bool = False) -> list[dict]:
    q = sa.select(st.tokens).where(st.tokens.c.user_id == user_id)
    if not include_revoked:
        q = q.where(st.tokens.c.revoked_at.is_(None))
    return [{"id": r.id, "name": r.name, "scope": r.scope, "apps": json.loads(r.apps) if r.apps else None,
             "expires_at": r.expires_at.isoformat() if r.expires_at else None,
             "created_at": r.created_at.isoformat(),
             "last_used_at": r.last_used_at.isoformat() if r.last_used_at else None,
             "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None}
            for r in conn.execute(q.order_by(st.tokens.c.id))]


def revoke_token(ctx: Context, token_id: Any) -> None:
    tid = parse_id(token_id)
    if tid is None:
        raise NotFound("No such token / 令牌不存在")
    q = st.tokens.update().where(st.tokens.c.id == tid, st.tokens.c.revoked_at.is_(None))
    if not ctx.actor.is_admin:
        q = q.where(st.tokens.c.user_id == ctx.actor.id)
    if ctx.conn.execute(q.values(revoked_at=_now())).rowcount != 1:
        raise NotFound("No such token / 令牌不存在", {"id": tid})
    audit.write(ctx.conn, at=_now(), user_id=ctx.actor.id, action="token", summary=f"revoked API token {tid}")


def actor_for_token(conn: Connection, token: str) -> Actor:
    if not token or len(token) > 200:
        raise Unauthorized("Invalid token / 令牌无效")
    row = conn.execute(sa.select(st.tokens).where(st.tokens.c.token_hash == _token_hash(token))).first()
    now = _now()
    if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        raise Unauthorized("Invalid, revoked or expired token / 令牌无效、已撤销或已过期")
    apps = frozenset(json.loads(row.apps)) if row.apps else None
    actor = load_actor(conn, row.user_id, token_scope=row.scope, token_apps=apps)
    if actor is None:
        raise Unauthorized("The token's user is inactive / 令牌所属用户已停用")
    return actor
