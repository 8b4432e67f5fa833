"""Dry run of the whole record pipeline on a sample record: computed values, validation errors,
score breakdown, assignments and why, SLA due times, actions that would run — writing nothing.

The caller runs it inside a transaction that is rolled back, so even counters stay untouched.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engines.errors import NotFound, ValidationFailed

from .context import Context
from .permissions import require
from .record_values import coerce_body, to_wire
from .records import RecordCall, RecordsService

SIMULATE_FROM = datetime(1900, 1, 1, tzinfo=UTC)
SIMULATE_UNTIL = datetime(9000, 12, 31, tzinfo=UTC)


def simulate(svc: RecordsService, ctx: Context, app_key: str, body: Any) -> dict:
    if not isinstance(body, dict):
        raise ValidationFailed("The body must be a JSON object / 请求体必须是对象", {"_body": ["must be an object"]})
    entity_key = body.get("entity")
    record = body.get("record") or {}
    previous = body.get("previous")
    capp = svc.app(ctx, app_key)
    if not isinstance(entity_key, str) or capp.app.entity(entity_key) is None:
        raise NotFound(f"No entity {entity_key!r} / 实体不存在", {"entity": entity_key})
    if body.get("at"):
        try:
            at = datetime.fromisoformat(str(body["at"]).replace("Z", "+00:00"))
            at = at if at.tzinfo else at.replace(tzinfo=capp.tz)
            # room for the SLA clocks and timers that run from it (they add days and years)
            if not SIMULATE_FROM <= at.astimezone(UTC) <= SIMULATE_UNTIL:
                raise ValueError("out of range")
        except (ValueError, OverflowError):
            raise ValidationFailed("at must be an ISO 8601 date and time between 1900 and 9000 / 时间格式无效",
                                   {"at": ["invalid"]}) from None
        ctx = Context(ctx.conn, ctx.actor, at)
    access = svc.access(ctx, capp, entity_key)
    require(access, "read", entity_key)
    entity = capp.entity(entity_key)
    state_field = svc._state_field(capp, entity_key)
    if previous is not None:
        errors: dict[str, list[str]] = {}
        prev = coerce_body(capp, entity, {k: v for k, v in previous.items() if k != state_field}
                           if isinstance(previous, dict) else previous, access, state_field=None,
                           may_set_owner=True, errors=errors)
        if state_field and isinstance(previous, dict) and previous.get(state_field):
            prev[state_field] = previous[state_field]
        new = coerce_body(capp, entity, record, access, state_field=state_field, may_set_owner=True, errors=errors)
        rc = RecordCall(ctx, capp, entity, "update", {**prev, **new}, prev={**prev, "_version": 1},
                        written=set(new), errors=errors, simulate=True, record_id=0)
        svc._pipeline(rc)
    else:
        rc = svc.prepare_create(ctx, capp, entity_key, record, access, simulate=True)
    computed = {f.key: rc.values.get(f.key) for f in entity.fields if f.type in ("formula", "rollup")}
    computed.update({t["target"]: t.get("value") for t in rc.trace if t.get("kind") == "compute" and t.get("fired")})
    wire = to_wire(capp, entity, {**rc.values, "id": None}, hidden=access.hidden)
    actions = [{"rule": t["rule"], "condition": t.get("condition"), "inputs": t.get("inputs")}
               for t in rc.trace if t.get("kind") == "automation" and t.get("fired")]
    for rule in capp.app.rules:
        for a in actions:
            if a["rule"] == rule.get("key"):
                a["actions"] = rule.get("actions")
    out = {
        "entity": entity_key,
        "record": wire,
        "computed": {k: _plain(v) for k, v in computed.items()},
        "errors": rc.errors,
        "valid": not rc.errors,
        "scores": [t for t in rc.trace if t.get("kind") == "score"],
        "assignments": [t for t in rc.trace if t.get("kind") == "assign"],
        "validations": [t for t in rc.trace if t.get("kind") == "validate"],
        "actions": actions,
        "trace": rc.trace,
    }
    try:
        from .flows_runtime import explain_sla
    except ImportError:
        explain_sla = None
    if explain_sla is not None:
        out["sla"] = explain_sla(ctx, capp, entity_key, rc.values, ctx.now)
    return out


def _plain(value):
    if value is None or isinstance(value, (bool, int, float, str, list)):
        return value
    return str(value)
