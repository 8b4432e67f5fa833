"""The action executor shared by automations, flows (transitions, on_enter/on_exit), SLA breaches,
escalations and scheduled automations.

An action is a one-key object: ``{set: {field: expression}}``, ``{assign: {to, strategy?, field?}}``,
``{add_tag: tag}``, ``{remove_tag: tag}`` (field actions: they change ``rc.values`` before the
write) and ``{create: {entity, values}}``, ``{notify: {to, message}}``, ``{email: {to, subject,
body}}``, ``{webhook: {url, secret_ref?}}``, ``{transition: key}``, ``{survey: {form, to}}``,
``{task: {title, to, due?}}`` (side effects: they run after the write, inside the same
transaction; messages go to the outbox and are delivered after commit). Each kind is a small
class in ``ACTIONS``. Every action leaves an entry in ``rc.trace``; a failing action raises a
``JimuError`` (code ``action_failed``) and the caller's transaction rolls back.

Also owns resolving recipients (``owner``, ``user:NAME``, ``role:ROLE``, ``team:KEY``,
``field:F``, ``supervisor``) to user ids and ``{field}`` message templates.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import sqlalchemy as sa

from engines.errors import JimuError, TransitionNotAllowed
from engines.field_types import REGISTRY, FieldValueError

from . import outbox
from . import system_tables as st
from .context import Actor, Context
from .record_values import title_of, to_wire

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)\}")
_PATH = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")


def failed(kind: str, source: str, message: str, details: Any = None) -> JimuError:
    return JimuError(f"Action {kind} ({source}) failed: {message} / 动作「{kind}」执行失败：{message}",
                     {"action": kind, "source": source, **({"error": details} if details is not None else {})},
                     code="action_failed", status=422)


# ---------------------------------------------------------------------- values, templates, people
def evaluate(svc, rc, text: Any, *, expect: str | None = None) -> Any:
    if not isinstance(text, str):
        return text          # a literal written in YAML (number, boolean)
    return svc.evaluate(rc, text, expect=expect)


def path_values(svc, rc, names: Iterable[str]) -> dict:
    return svc.lookup_values(rc.ctx, rc.capp, rc.entity, rc.values, list(names))


def _display(rc, name: str, value: Any) -> str:
    if value is None:
        return ""
    f = rc.entity.field(name) if "." not in name else None
    if f is not None and f.type == "select":
        return f.option_label(value)
    if f is not None and f.type == "multiselect" and isinstance(value, list):
        return "、".join(f.option_label(v) for v in value)
    if isinstance(value, datetime):
        return value.astimezone(rc.capp.tz).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, bool):
        return "是 yes" if value else "否 no"
    return str(value)


def render(svc, rc, template: Any) -> str:
    """``{field}`` and ``{lookup.field}`` placeholders filled from the record (unknown ones kept)."""
    text = "" if template is None else str(template)
    names = {m.group(1) for m in _PLACEHOLDER.finditer(text)}
    if not names:
        return text
    known = {n for n in names if n.split(".")[0] in rc.entity.field_map or n in ("id", "owner")}
    values = path_values(svc, rc, known)
    return _PLACEHOLDER.sub(lambda m: _display(rc, m.group(1), values.get(m.group(1)))
                            if m.group(1) in known else m.group(0), text)


def resolve_users(ctx: Context, capp, entity_key: str, values: Mapping[str, Any], refs: Any) -> list[int]:
    """User ids of ``owner``, ``user:NAME``, ``role:ROLE`` (app role), ``team:KEY``, ``field:F``,
    ``supervisor`` (of the owner's teams); unknown references raise."""
    conn, out = ctx.conn, []
    u, m = st.users, st.team_members
    for ref in [refs] if isinstance(refs, str) else list(refs or []):
        kind, _, arg = str(ref).partition(":")
        if kind == "owner" and not arg:
            ids = [values.get("owner")]
        elif kind == "supervisor" and not arg:
            teams = sa.select(m.c.team).where(m.c.user_id == values.get("owner"))
            ids = [r[0] for r in conn.execute(sa.select(st.teams.c.supervisor_id).where(st.teams.c.key.in_(teams)))]
        elif kind == "user":
            ids = [r[0] for r in conn.execute(sa.select(u.c.id).where(u.c.name == arg))]
        elif kind == "role":
            ids = [r[0] for r in conn.execute(sa.select(st.app_roles.c.user_id).where(
                st.app_roles.c.app == capp.key, st.app_roles.c.role == arg).order_by(st.app_roles.c.user_id))]
        elif kind == "team":
            ids = [r[0] for r in conn.execute(sa.select(m.c.user_id).where(m.c.team == arg).order_by(m.c.user_id))]
        elif kind == "field":
            f = capp.entity(entity_key).field(arg)
            if f is None or f.type != "user":
                raise JimuError(f"{ref!r}: {arg!r} is not a user field / {arg!r} 不是用户字段", {"to": ref},
                                code="action_failed", status=422)
            ids = [values.get(arg)]
        else:
            raise JimuError(f"Unknown recipient {ref!r}: use owner, user:NAME, role:ROLE, team:KEY or field:F / "
                            f"未知的接收人 {ref!r}", {"to": ref}, code="action_failed", status=422)
        out += [i for i in ids if i is not None]
    if out:
        active = {r[0] for r in conn.execute(sa.select(u.c.id).where(u.c.id.in_(sorted(set(out))),
                                                                       u.c.active.is_(True)))}
        out = [i for i in out if i in active]
    return list(dict.fromkeys(out))


def _wire_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return value


def system_actor(ctx: Context) -> Actor:
    """The engine acting: full access, roles not checked, recorded under the user who caused it."""
    a = ctx.actor
    return Actor(id=a.id, name=a.name, role="system", teams=a.teams, app_roles=a.app_roles)


def _to_list(value: Any) -> list:
    return [value] if isinstance(value, str) else list(value or [])


def _address(svc, rc, target: Any) -> list[str]:
    out: list[str] = []
    for item in _to_list(target):
        text = str(item).strip()
        if _PATH.match(text) and text.split(".")[0] in rc.entity.field_map:
            value = path_values(svc, rc, [text]).get(text)
        elif "@" in text and " " not in text and "'" not in text:
            value = text
        else:
            value = evaluate(svc, rc, text)
        out += [str(v) for v in _to_list(value) if v]
    return out


# ---------------------------------------------------------------------- the action kinds
class Action:
    name: ClassVar[str]
    phase: ClassVar[str] = "effect"      # field | effect

    def run(self, svc, rc, spec: Any, source: str) -> dict:
        raise NotImplementedError


class SetAction(Action):
    name, phase = "set", "field"

    def run(self, svc, rc, spec, source):
        if not isinstance(spec, Mapping) or not spec:
            raise failed(self.name, source, "set needs {field: expression} / set 需要 {字段: 表达式}")
        state_field = svc._state_field(rc.capp, rc.entity.key)
        out = {}
        for key, text in spec.items():
            f = rc.entity.field(key)
            if f is None or REGISTRY[f.type].computed or f.type == "subtable":
                raise failed(self.name, source, f"{key!r} is not a writable field / 字段 {key!r} 不可写入")
            if key == state_field:
                raise failed(self.name, source, f"{key!r} is the workflow state: use a transition / 流程状态只能通过流转修改")
            value = evaluate(svc, rc, text)
            try:
                rc.values[key] = REGISTRY[f.type].coerce(_wire_value(value), f)
            except FieldValueError as exc:
                raise failed(self.name, source, f"{key}: {exc}", {key: [str(exc)]}) from exc
            out[key] = _wire_value(rc.values[key]) if not isinstance(rc.values[key], datetime) \
                else rc.values[key].isoformat()
        return {"set": out}


class AssignAction(Action):
    name, phase = "assign", "field"

    def run(self, svc, rc, spec, source):
        spec = {"to": spec} if isinstance(spec, str) else dict(spec or {})
        target = spec.get("field") or "owner"
        if target != "owner" and (rc.entity.field(target) is None or rc.entity.field(target).type != "user"):
            raise failed(self.name, source, f"{target!r} is not a user field / {target!r} 不是用户字段")
        from .assignment import choose_assignee
        user_id, trace = choose_assignee(rc.ctx, rc.capp, rc.entity.key, spec.get("to"), spec.get("strategy"),
                                         rc.values, target=target, simulate=rc.simulate)
        if user_id is not None:
            rc.values[target] = user_id
        return {"field": target, "to": spec.get("to"), "user": user_id, "why": trace}


class TagAction(Action):
    phase = "field"

    def __init__(self, name: str):
        self.name = name

    def run(self, svc, rc, spec, source):
        tags = [str(t) for t in _to_list(spec) if str(t).strip()]
        if not tags:
            raise failed(self.name, source, "a tag is required / 缺少标签")
        current = list(rc.values.get("_tags") or [])
        if self.name == "add_tag":
            current += [t for t in tags if t not in current]
        else:
            current = [t for t in current if t not in tags]
        rc.values["_tags"] = current
        return {"tags": tags}


class CreateAction(Action):
    name = "create"

    def run(self, svc, rc, spec, source):
        if not isinstance(spec, Mapping) or not isinstance(spec.get("entity"), str):
            raise failed(self.name, source, "create needs {entity, values} / create 需要 entity 与 values")
        entity_key = spec["entity"]
        rc.capp.entity(entity_key)
        body = {k: _wire_value(evaluate(svc, rc, v)) for k, v in (spec.get("values") or {}).items()}
        body = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in body.items()}
        if "owner" not in body and rc.values.get("owner") is not None:
            body["owner"] = rc.values.get("owner")
        ctx = Context(rc.ctx.conn, system_actor(rc.ctx), rc.ctx.now)
        try:
            created = svc.create(ctx, rc.capp.key, entity_key, body)
        except JimuError as exc:
            raise failed(self.name, source, exc.message, exc.details) from exc
        return {"entity": entity_key, "id": created["id"]}


class NotifyAction(Action):
    """In-app notifications to users; a recipient that is a field holding an email address
    (``customer.email``, ``contact_email``) is told by email instead: customers are not users."""
    name = "notify"
    USER_REFS = ("user", "role", "team", "field")

    def run(self, svc, rc, spec, source):
        spec = dict(spec or {}) if isinstance(spec, Mapping) else {"message": spec}
        refs = _to_list(spec.get("to") or ["owner"])
        people, paths = [], []
        for ref in map(str, refs):
            f = rc.entity.field(ref.split(".")[0]) if _PATH.match(ref) else None
            if ref in ("owner", "supervisor") or (ref.partition(":")[0] in self.USER_REFS and ":" in ref):
                people.append(ref)
            elif f is not None and "." not in ref and f.type == "user":
                people.append(f"field:{ref}")
            elif f is not None:
                paths.append(ref)
            else:
                people.append(ref)          # resolve_users names what is wrong with it
        users = resolve_users(rc.ctx, rc.capp, rc.entity.key, rc.values, people)
        emails = [a for a in _address(svc, rc, paths) if "@" in a] if paths else []
        message = render(svc, rc, spec.get("message") or f"{rc.entity.label}: {title_of(rc.entity, rc.values)}")
        if users:
            outbox.enqueue(rc.ctx.conn, "notify", {"user_ids": users, "message": message, "source": source},
                           now=rc.ctx.now, app=rc.capp.key, entity=rc.entity.key, record_id=rc.record_id)
        if emails:
            subject = f"{rc.entity.label}：{title_of(rc.entity, rc.values)}"
            outbox.enqueue(rc.ctx.conn, "email", {"to": emails, "subject": subject, "body": message},
                           now=rc.ctx.now, app=rc.capp.key, entity=rc.entity.key, record_id=rc.record_id)
        return {"to": refs, "users": users, "message": message, **({"emails": emails} if paths else {})}


class EmailAction(Action):
    name = "email"

    def run(self, svc, rc, spec, source):
        if not isinstance(spec, Mapping) or not spec.get("to"):
            raise failed(self.name, source, "email needs {to, subject, body} / email 需要 to、subject、body")
        to = _address(svc, rc, spec["to"])
        subject, body = render(svc, rc, spec.get("subject")), render(svc, rc, spec.get("body"))
        if to:
            outbox.enqueue(rc.ctx.conn, "email", {"to": to, "subject": subject, "body": body},
                           now=rc.ctx.now, app=rc.capp.key, entity=rc.entity.key, record_id=rc.record_id)
        return {"to": to, "subject": subject, **({} if to else {"skipped": "no address / 没有邮箱地址"})}


class WebhookAction(Action):
    name = "webhook"

    def run(self, svc, rc, spec, source):
        spec = {"url": spec} if isinstance(spec, str) else dict(spec or {})
        url = spec.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise failed(self.name, source, f"webhook needs an http(s) url, got {url!r} / 需要 http(s) 地址")
        record = to_wire(rc.capp, rc.entity, rc.values)
        body = {"event": source, "app": rc.capp.key, "entity": rc.entity.key, "id": rc.record_id,
                "at": rc.ctx.now.astimezone(UTC).isoformat(), "record": record}
        outbox.enqueue(rc.ctx.conn, "webhook", {"url": url, "secret_ref": spec.get("secret_ref"), "body": body},
                       now=rc.ctx.now, app=rc.capp.key, entity=rc.entity.key, record_id=rc.record_id)
        return {"url": url}


class TransitionAction(Action):
    name = "transition"

    def run(self, svc, rc, spec, source):
        key = spec.get("transition") if isinstance(spec, Mapping) else spec
        if not isinstance(key, str) or not key:
            raise failed(self.name, source, "transition needs a transition key / 需要流转名称")
        from .flows_runtime import FlowService
        depth = int(rc.extra.get("depth", 0)) + 1
        try:
            FlowService(svc).transition_system(rc.ctx, rc.capp, rc.entity.key, rc.record_id, key,
                                               comment=f"{source}", depth=depth)
        except TransitionNotAllowed as exc:
            # the record has moved on (another state, a guard): the automatic step does not apply
            return {"transition": key, "skipped": exc.message, "reason": (exc.details or {}).get("reason")}
        return {"transition": key}


class SurveyAction(Action):
    name = "survey"

    def run(self, svc, rc, spec, source):
        from . import surveys
        if not isinstance(spec, Mapping) or not isinstance(spec.get("form"), str):
            raise failed(self.name, source, "survey needs {form, to} / survey 需要 form 与 to")
        token, expires = surveys.create_token(rc.ctx.conn, rc.capp, spec["form"], rc.entity.key, rc.record_id,
                                              rc.ctx.now, options=spec)
        link = surveys.link(token)
        to = _address(svc, rc, spec.get("to")) if spec.get("to") else []
        if to:
            title = title_of(rc.entity, rc.values)
            form = rc.capp.app.form(spec["form"]) or {}
            subject = render(svc, rc, spec.get("subject") or f"{form.get('label') or '满意度调查'}：{title}")
            body = render(svc, rc, spec.get("body") or
                          f"您好，您反馈的「{title}」已处理。请花一分钟告诉我们您的评价：\n{{link}}\n\n"
                          f"Your request \"{title}\" has been handled. Please tell us how we did:\n{{link}}\n\n"
                          f"链接 {expires:%Y-%m-%d} 前有效，仅可提交一次。/ The link works once, "
                          f"until {expires:%Y-%m-%d}.")
            outbox.enqueue(rc.ctx.conn, "email", {"to": to, "subject": subject, "body": body.replace("{link}", link)},
                           now=rc.ctx.now, app=rc.capp.key, entity=rc.entity.key, record_id=rc.record_id)
        return {"form": spec["form"], "to": to, "expires_at": expires.isoformat(),
                **({} if to else {"skipped": "no address: the link was not sent / 没有邮箱，未发送"})}


class TaskAction(Action):
    name = "task"

    def run(self, svc, rc, spec, source):
        spec = {"title": spec} if isinstance(spec, str) else dict(spec or {})
        users = resolve_users(rc.ctx, rc.capp, rc.entity.key, rc.values, spec.get("to") or ["owner"])
        due = spec.get("due")
        if isinstance(due, Mapping):
            due = rc.ctx.now + timedelta(days=float(due.get("days", 0)), hours=float(due.get("hours", 0)))
        elif due is not None:
            due = evaluate(svc, rc, due)
        title = render(svc, rc, spec.get("title") or title_of(rc.entity, rc.values))[:500]
        ids = []
        for user in users:
            ids.append(rc.ctx.conn.execute(st.tasks.insert().values(
                kind="task", title=title, app=rc.capp.key, entity=rc.entity.key, record_id=rc.record_id,
                assignee_id=user, status="open", due_at=due if isinstance(due, datetime) else None,
                payload="{}", created_at=rc.ctx.now)).inserted_primary_key[0])
        return {"title": title, "users": users, "tasks": ids}


ACTIONS: dict[str, Action] = {a.name: a for a in (
    SetAction(), AssignAction(), TagAction("add_tag"), TagAction("remove_tag"), CreateAction(), NotifyAction(),
    EmailAction(), WebhookAction(), TransitionAction(), SurveyAction(), TaskAction())}


def parse(action: Any, source: str) -> tuple[str, Any]:
    kinds = [k for k in action if k in ACTIONS] if isinstance(action, Mapping) else []
    if len(kinds) != 1:
        raise failed(str(action)[:60], source, f"an action is one of {', '.join(ACTIONS)} / 未知的动作")
    return kinds[0], action[kinds[0]]


def _run(svc, rc, actions: Iterable[Any], phase: str, source: str) -> None:
    for action in actions or ():
        kind, spec = parse(action, source)
        handler = ACTIONS[kind]
        if handler.phase != phase:
            continue
        if phase == "effect" and rc.simulate:
            rc.trace.append({"source": source, "action": kind, "simulated": True, "spec": spec})
            continue
        try:
            detail = handler.run(svc, rc, spec, source)
        except JimuError as exc:
            if exc.code == "action_failed":
                raise
            raise failed(kind, source, exc.message, exc.details) from exc
        rc.trace.append({"source": source, "action": kind, **detail})


def apply_field_actions(svc, rc, actions: Iterable[Any], *, source: str) -> None:
    """Run set/assign/add_tag/remove_tag: they change ``rc.values`` before the write."""
    _run(svc, rc, actions, "field", source)


def apply_side_effects(svc, rc, actions: Iterable[Any], *, source: str) -> None:
    """Run create/notify/email/webhook/transition/survey/task after the write, in its transaction."""
    _run(svc, rc, actions, "effect", source)


def field_actions_only(actions: Iterable[Any]) -> bool:
    return all(ACTIONS[parse(a, "?")[0]].phase == "field" for a in actions or ())
