"""Running workflows: the records-pipeline hook of flows and the transition service.

``FlowHook`` plugs flows into every record write: the state field is written only by transitions,
a create starts the flow in ``initial`` (a ``jimu_flow_instances`` row with the app revision the
instance keeps, SLA clocks started, timers planned, ``on_enter`` actions run), transitions and
scheduled action runs apply their field actions before the write and their side effects after it,
a change of an SLA's target field re-plans the timers, date automations are re-planned, and records
read carry ``_flow`` and ``_sla``. ``FlowService`` runs transitions (permission, the engine's
checks, approvals, one transaction through ``RecordsService.write_updated``), SLA timers and
action runs on existing records. ``explain_sla`` answers the SLA explanation for simulation.

Does not own the flow language (``engines.flows``, ``engines.sla``), instance storage
(``runtime.flow_state``), actions (``runtime.actions``) or approvals and tasks
(``runtime.approvals``).
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from engines import expressions as ex
from engines.errors import NotFound, PermissionDenied, TransitionNotAllowed, ValidationFailed, field_errors
from engines.flows import check_transition, plan_transition

from . import flow_state, scheduled_rules, timers
from . import system_tables as st
from .actions import apply_field_actions, apply_side_effects, system_actor
from .context import Actor, Context
from .permissions import FULL, require
from .record_values import coerce_body
from .records import RecordCall, RecordHooks, _can_reach

MAX_CHAIN = 8           # transitions started by the actions of a transition, at most this deep
MAX_COMMENT = 4000


class FlowHook(RecordHooks):
    def __init__(self, catalog):
        self.catalog = catalog
        self.cache = flow_state.FlowCache()

    @property
    def records(self):
        """The records service this hook serves (it binds its hooks when it is built)."""
        if self.svc is None:
            raise RuntimeError("FlowHook is not bound to a RecordsService")
        return self.svc

    # ------------------------------------------------------------------ pipeline
    def state_field(self, capp, entity_key):
        spec = capp.app.flow_for(entity_key)
        return spec.get("state_field") if spec else None

    def before_write(self, rc: RecordCall) -> None:
        if rc.op == "create":
            info = self.cache.get(rc.ctx.conn, rc.capp, rc.entity.key)
            if info is not None:
                flow = info.flow
                rc.values[flow.state_field] = flow.initial
                rc.extra["flow_start"] = info
                apply_field_actions(self.records, rc, flow.states[flow.initial].on_enter,
                                    source=f"flow {flow.key}: enter {flow.initial}")
        pending = rc.extra.get("flow_actions")
        if pending:
            apply_field_actions(self.records, rc, pending["actions"], source=pending["source"])

    def after_write(self, rc: RecordCall) -> None:
        if rc.simulate:
            return
        ctx, capp, entity = rc.ctx, rc.capp, rc.entity.key
        info = rc.extra.get("flow_start") if rc.op == "create" else None
        pending = rc.extra.get("flow_actions")
        # side effects trace after the audit entry was written: keep its id to complete its trace
        entry_id = _last_entry(ctx.conn, capp.key, entity, rc.record_id) if rc.trace or info or pending else None
        if info is not None and flow_state.load_instance(ctx.conn, capp.key, entity, rc.record_id) is not None:
            # an automation already moved the new record on (and started its flow): only the
            # side effects of entering the initial state remain
            apply_side_effects(self.records, rc, info.flow.states[info.flow.initial].on_enter,
                               source=f"flow {info.flow.key}: enter {info.flow.initial}")
        elif info is not None:
            flow = info.flow
            inst = flow_state.Instance(flow=flow.key, revision=info.revision, state=flow.initial, sla=[],
                                       stored=False)
            flow_state.apply_events(info, inst, None, flow.initial, rc.values, ctx.now)
            flow_state.save_instance(ctx.conn, capp.key, entity, rc.record_id, inst, ctx.now)
            flow_state.plan(ctx.conn, info, inst, capp.key, entity, rc.record_id, ctx.now)
            apply_side_effects(self.records, rc, flow.states[flow.initial].on_enter,
                               source=f"flow {flow.key}: enter {flow.initial}")
        if pending and pending.get("transition"):
            info, inst = pending["info"], pending["instance"]
            inst.state = pending["to"]
            flow_state.apply_events(info, inst, pending["from"], pending["to"], rc.values, ctx.now)
            flow_state.save_instance(ctx.conn, capp.key, entity, rc.record_id, inst, ctx.now)
            flow_state.plan(ctx.conn, info, inst, capp.key, entity, rc.record_id, ctx.now)
        elif rc.op == "update":
            self._retarget(rc)
        if pending:
            apply_side_effects(self.records, rc, pending["actions"], source=pending["source"])
        scheduled_rules.plan_record(ctx.conn, capp, entity, rc.record_id, rc.values, rc.prev, ctx.now)
        if rc.trace and entry_id is not None:
            _complete_trace(ctx.conn, entry_id, rc.trace)

    def _retarget(self, rc: RecordCall) -> None:
        inst = flow_state.load_instance(rc.ctx.conn, rc.capp.key, rc.entity.key, rc.record_id)
        if inst is None:
            return
        info = self.cache.get(rc.ctx.conn, rc.capp, rc.entity.key, inst.revision)
        if info is None or not info.flow.slas:
            return
        by = {p.target.get("by") for p in info.flow.slas} - {None}
        if not any(rc.prev.get(k) != rc.values.get(k) for k in by):
            return
        if flow_state.retarget(info, inst, rc.values, rc.ctx.now):
            flow_state.save_instance(rc.ctx.conn, rc.capp.key, rc.entity.key, rc.record_id, inst, rc.ctx.now)
            flow_state.plan(rc.ctx.conn, info, inst, rc.capp.key, rc.entity.key, rc.record_id, rc.ctx.now)

    def after_delete(self, rc: RecordCall) -> None:
        conn, app, entity, rid = rc.ctx.conn, rc.capp.key, rc.entity.key, rc.record_id
        flow_state.delete_instance(conn, app, entity, rid)
        timers.cancel(conn, app=app, entity=entity, record_id=rid)
        t = st.tasks
        conn.execute(t.update().where(t.c.app == app, t.c.entity == entity, t.c.record_id == rid,
                                      t.c.status == "open").values(status="cancelled", completed_at=rc.ctx.now))

    def decorate(self, ctx, capp, entity_key, records) -> None:
        spec = capp.app.flow_for(entity_key)
        if spec is None or not records:
            return
        found = flow_state.load_instances(ctx.conn, capp.key, entity_key, [r.get("id") for r in records])
        for r in records:
            inst = found.get(r.get("id"))
            if inst is None:
                r["_flow"] = {"flow": spec.get("key"), "state": r.get(spec.get("state_field")), "revision": None}
                r["_sla"] = []
                continue
            r["_flow"] = inst.as_json()
            info = self.cache.get(ctx.conn, capp, entity_key, inst.revision)
            r["_sla"] = flow_state.statuses(info, inst, ctx.now, capp.tz) if info is not None else []

    # ------------------------------------------------------------------ instances
    def instance(self, ctx: Context, capp, entity_key: str, row: dict):
        """(FlowInfo, Instance) of a record. A record from before its flow existed joins it now (its
        clocks start with its next transition); a record created in this very call (an automation
        moving it on at create, before this hook's own after-write ran) starts like a create."""
        conn = ctx.conn
        inst = flow_state.load_instance(conn, capp.key, entity_key, row["id"])
        if inst is not None:
            return self.cache.get(conn, capp, entity_key, inst.revision), inst
        info = self.cache.get(conn, capp, entity_key)
        if info is None:
            return None, None
        flow = info.flow
        state = row.get(flow.state_field)
        state = state if state in flow.states else flow.initial
        inst = flow_state.Instance(flow=flow.key, revision=info.revision, state=state, sla=[], stored=False)
        if state == flow.initial and row.get("created_at") == ctx.now:
            flow_state.apply_events(info, inst, None, flow.initial, row, ctx.now)
        return info, inst


def _last_entry(conn, app: str, entity: str, record_id: int) -> int | None:
    a = st.audit
    return conn.execute(sa.select(sa.func.max(a.c.id)).where(a.c.app == app, a.c.entity == entity,
                                                             a.c.record_id == record_id)).scalar()


def _complete_trace(conn, entry_id: int, trace: list) -> None:
    a = st.audit
    raw = conn.execute(sa.select(a.c.details).where(a.c.id == entry_id)).scalar()
    details = json.loads(raw) if raw else {}
    if not isinstance(details, dict) or details.get("trace") == trace:
        return
    details["trace"] = trace
    conn.execute(a.update().where(a.c.id == entry_id)
                 .values(details=json.dumps(details, ensure_ascii=False, default=str)))


class FlowService:
    """Transitions, SLA timers and action runs on records (one instance per records service)."""

    def __init__(self, records):
        self.records = records
        self.hook = next((h for h in records.hooks if isinstance(h, FlowHook)), None)
        if self.hook is None:
            raise RuntimeError("the records service has no FlowHook: add it in runtime.hooks.default_hooks")

    # ------------------------------------------------------------------ transitions
    def transition(self, ctx: Context, app_key: str, entity_key: str, record_id: Any, transition_key: str, *,
                   comment: str | None = None, values: Any = None) -> dict:
        """A user runs a transition: they must be able to update the record; answers the record."""
        svc = self.records
        capp = svc.app(ctx, app_key)
        entity = capp.entity(entity_key)
        access = svc.access(ctx, capp, entity_key)
        read = access.scope("read")
        if read == "none":
            raise NotFound("No such record / 记录不存在", {"id": record_id})
        prev = svc.load_row(ctx, capp, entity_key, record_id, scope=read)
        scope = require(access, "update", entity.label)
        if scope != "all" and not _can_reach(svc, ctx, capp, entity_key, prev["id"], scope):
            raise PermissionDenied("You may not update this record / 无权操作此记录", {"operation": "update"})
        return self.run(ctx, capp, entity_key, prev, transition_key, comment=comment, values=values,
                        access=access, may_set_owner=scope == "all")

    def transition_system(self, ctx: Context, capp, entity_key: str, record_id: int, transition_key: str, *,
                          comment: str | None = None, values: Any = None, depth: int = 0,
                          actor: Actor | None = None, approval: dict | None = None) -> dict:
        """The engine runs a transition (SLA breach, action, survey, approval): roles do not apply;
        states, required fields and guards do."""
        sctx = Context(ctx.conn, actor or system_actor(ctx), ctx.now)
        prev = self.records.load_row(sctx, capp, entity_key, record_id)
        return self.run(sctx, capp, entity_key, prev, transition_key, comment=comment, values=values, access=FULL,
                        may_set_owner=True, depth=depth, approval=approval)

    def run(self, ctx: Context, capp, entity_key: str, prev: dict, key: str, *, comment=None, values=None,
            access=FULL, may_set_owner: bool = False, depth: int = 0, approval: dict | None = None) -> dict:
        svc, entity = self.records, capp.entity(entity_key)
        if depth > MAX_CHAIN:
            raise TransitionNotAllowed(f"Too many transitions chained by actions (over {MAX_CHAIN}) / 连锁流转过多",
                                       {"reason": "chain_too_long", "transition": key})
        if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT):
            raise ValidationFailed("comment must be text of at most 4000 characters / 备注须为不超过 4000 字的文本",
                                   {"comment": ["text, at most 4000 characters"]})
        if values is not None and not isinstance(values, dict):
            raise ValidationFailed("values must be an object of field values / values 必须是字段值对象",
                                   {"values": ["must be an object"]})
        info, inst = self.hook.instance(ctx, capp, entity_key, prev)
        if info is None:
            raise TransitionNotAllowed(f"{entity.label} has no workflow / 「{entity.label}」没有流程",
                                       {"reason": "no_flow", "transition": key})
        flow = info.flow
        errors: dict[str, list[str]] = {}
        body = coerce_body(capp, entity, values or {}, access, state_field=flow.state_field,
                           may_set_owner=may_set_owner, errors=errors)
        if errors:
            raise field_errors(errors)
        merged = {**prev, **body}
        candidate = flow.transitions.get(key)
        names = candidate.guard.names if candidate is not None and candidate.guard is not None else ()
        checked = svc.lookup_values(ctx, capp, entity, merged, names)
        t = check_transition(flow, key, inst.state, ctx.actor.roles_in(capp.key), ctx.actor.is_admin, checked,
                             ex.EvalContext(now=ctx.now, tz=capp.tz, prev=prev))
        if t.approval is not None and approval is None:
            from .approvals import request_approval
            pending = request_approval(self, ctx, capp, entity, prev, info, inst, t, values, comment)
            out = self._wire(ctx, capp, entity_key, prev["id"], access)
            out["_approval"] = pending
            return out
        plan = plan_transition(flow, t, inst.state)
        rc = RecordCall(ctx, capp, entity, "update", {**merged, flow.state_field: t.to}, prev=prev,
                        written=set(body), record_id=prev["id"])
        rc.extra.update(depth=depth, flow_actions={
            "transition": t.key, "from": inst.state, "to": t.to, "info": info, "instance": inst,
            "actions": plan["exit_actions"] + plan["actions"] + plan["enter_actions"],
            "source": f"transition {t.key}"})
        svc._pipeline(rc)
        svc._check_unique_and_links(ctx, capp, [rc])
        svc._raise_errors([rc], True)
        details = {"from": inst.state, "to": t.to, "transition": t.key, "comment": comment,
                   "labels": {"from": flow.label_of(inst.state), "to": flow.label_of(t.to), "transition": t.label}}
        if approval:
            details["approval"] = approval
        svc.write_updated(ctx, capp, rc, access, action="transition", summary=f"{inst.state} → {t.to}",
                          details=details)
        return self._wire(ctx, capp, entity_key, prev["id"], access)

    def _wire(self, ctx, capp, entity_key: str, record_id: int, access) -> dict:
        # the state after every chained action; shown even if the user can no longer read it
        row = self.records.load_row(ctx, capp, entity_key, record_id)
        return self.records._wire_many(ctx, capp, entity_key, [row], access)[0]

    # ------------------------------------------------------------------ actions on stored records
    def run_actions(self, ctx: Context, capp, entity_key: str, record_id: int, actions: list, *, source: str,
                    action: str = "automation", summary: str | None = None, details: dict | None = None,
                    condition: str | None = None, depth: int = 0) -> bool:
        """Run actions on a stored record as the engine (field actions in one write, then side
        effects); answers False when ``condition`` does not hold and nothing ran."""
        svc = self.records
        sctx = Context(ctx.conn, system_actor(ctx), ctx.now)
        prev = svc.load_row(sctx, capp, entity_key, record_id)
        entity = capp.entity(entity_key)
        rc = RecordCall(sctx, capp, entity, "update", dict(prev), prev=prev, record_id=prev["id"])
        if condition:
            try:
                holds = svc.evaluate(rc, condition, expect=ex.BOOL, allow_prev=False) is True
            except ex.EvalError:
                holds = False
            if not holds:
                return False
        rc.extra.update(depth=depth, flow_actions={"actions": list(actions), "source": source})
        svc._pipeline(rc)
        svc._check_unique_and_links(sctx, capp, [rc])
        svc._raise_errors([rc], True)
        svc.write_updated(sctx, capp, rc, FULL, action=action, summary=summary or source, details=details)
        return True

    # ------------------------------------------------------------------ SLA timers
    def on_sla_timer(self, ctx: Context, timer: dict) -> None:
        """Fire a warn, breach or escalation timer, if the clock it was planned for still calls for it."""
        p = timer["payload"]
        capp = self.records.app(ctx, timer["app"])
        inst = flow_state.load_instance(ctx.conn, capp.key, timer["entity"], timer["record_id"])
        if inst is None or inst.flow != p.get("flow"):
            return
        info = self.hook.cache.get(ctx.conn, capp, timer["entity"], inst.revision)
        policy = info.policy(p.get("sla")) if info is not None else None
        entry = next((e for e in inst.sla if e.get("key") == p.get("sla")), None)
        current = flow_state.clock(info, policy, entry) if policy is not None and entry else None
        status = current.status(ctx.now) if current is not None else None
        if status is None or status["started_at"].astimezone(UTC).isoformat() != p.get("cycle"):
            return
        tag = p.get("tag")
        if tag in (entry.get("fired") or []):
            return
        kind = timer["kind"]
        if kind == "sla_warn" and status["status"] != "running":
            return
        if kind in ("sla_breach", "sla_escalation") and (status["status"] != "breached" or status["stopped_at"]):
            return
        entry.setdefault("fired", []).append(tag)
        flow_state.save_instance(ctx.conn, capp.key, timer["entity"], timer["record_id"], inst, ctx.now)
        due = status["due_at"].astimezone(capp.tz).strftime("%Y-%m-%d %H:%M") if status["due_at"] else "?"
        if kind == "sla_warn":
            actions = [{"notify": {"to": ["owner"], "message": f"SLA {policy.key}: due {due} / 即将超时，截止 {due}"}}]
            summary = f"SLA {policy.key} warning: due {due} / SLA 即将超时"
        elif kind == "sla_breach":
            actions = list(policy.on_breach)
            summary = f"SLA {policy.key} breached (due {due}) / SLA 已超时"
        else:
            level = int(p.get("level") or 0)
            actions = list(next((e.actions for e in policy.escalations if e.level == level), ()))
            summary = f"SLA {policy.key} escalation level {level} / SLA 第 {level} 级升级"
        self.run_actions(ctx, capp, timer["entity"], timer["record_id"], actions, source=f"sla {policy.key}: {tag}",
                         action=kind, summary=summary,
                         details={"sla": policy.key, "event": tag, "due_at": status["due_at"].isoformat()
                                  if status["due_at"] else None})


def explain_sla(ctx: Context, capp, entity_key: str, values: dict, at: datetime | None = None, *,
                pauses=(), cache: flow_state.FlowCache | None = None) -> list:
    """Per SLA of the entity's flow: target, due time, pauses and holidays crossed, warn time and
    when each escalation would fire, for a record with ``values`` created at ``at``."""
    info = (cache or flow_state.FlowCache()).get(ctx.conn, capp, entity_key)
    if info is None:
        return []
    at = at or ctx.now
    if at.tzinfo is None:
        at = at.replace(tzinfo=capp.tz)
    return flow_state.explain_info(info, values, at, pauses)


def record_pauses(conn, capp, entity_key: str, record_id: int, sla_key: str) -> list[tuple[datetime, datetime | None]]:
    """The pauses of one record's current SLA cycle (for explaining a live record)."""
    inst = flow_state.load_instance(conn, capp.key, entity_key, record_id)
    entry = next((e for e in (inst.sla if inst else []) if e.get("key") == sla_key), None)
    out, open_at = [], None
    for at, kind in flow_state._events(entry or {}):
        if kind == "pause":
            open_at = at
        elif kind in ("resume", "stop") and open_at is not None:
            out.append((open_at, at))
            open_at = None
    if open_at is not None:
        out.append((open_at, None))
    return out
