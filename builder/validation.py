"""Validation of app metadata: JSON Schema first, then the semantic checks.

Every error is collected (never the first only) as ``{"location": "entities[0].fields[3].key",
"message": ...}``. Formulas and conditions are type-checked through ``engines.expressions``; rules,
flows and reports through their engines' validators. Storing drafts lives in ``builder.store``.
"""
from __future__ import annotations

import json
import keyword
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS as PG_RESERVED
from sqlalchemy.dialects.sqlite.base import SQLiteIdentifierPreparer

from engines import expressions as ex
from engines.errors import DefinitionError
from engines.field_types import REGISTRY, FieldValueError, expr_type_of
from engines.model import SYSTEM_FIELDS, URL_WORDS, App, Entity, Field

RESERVED_FIELD_KEYS = (frozenset(SQLiteIdentifierPreparer.reserved_words) | frozenset(PG_RESERVED)
                       | frozenset(keyword.kwlist) | frozenset(SYSTEM_FIELDS)
                       | {"true", "false", "none", "null", "prev", "changed"})
MAX_KEY = 40

Errors = list[dict]


def load_schema(name: str) -> dict:
    text = resources.files("builder").joinpath("schemas", f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


_APP_VALIDATOR = jsonschema.Draft202012Validator(load_schema("app"))


def format_path(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "$"


def schema_errors(doc: Any, validator=_APP_VALIDATOR) -> Errors:
    errors = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        loc = format_path(err.absolute_path)
        msg = err.message
        if err.validator == "additionalProperties":
            msg = f"{err.message} / 不允许的属性"
        elif err.validator == "pattern":
            msg = (f"{err.instance!r} is not a valid key: lowercase letters, digits and _, starting "
                   f"with a letter / 键只能包含小写字母、数字和下划线，并以字母开头")
        if len(msg) > 300:
            msg = msg[:300] + "…"
        errors.append({"location": loc, "message": msg})
    return errors


def field_env(app: App, entity: Entity, *, depth: int = 1) -> dict[str, ex.FieldSig]:
    """The names an expression over ``entity`` may use, with lookups one level deep."""
    env: dict[str, ex.FieldSig] = {}
    for key, typ in (("id", "number"), ("created_at", "datetime"), ("updated_at", "datetime"),
                     ("created_by", "number"), ("updated_by", "number"), ("owner", "number"),
                     ("_version", "number")):
        env[key] = ex.FieldSig(typ)
    for f in entity.fields:
        if f.type not in REGISTRY:
            continue
        target = None
        if f.type == "lookup" and depth > 0 and f.target:
            tgt = app.entity(f.target)
            if tgt is not None:
                target = field_env(app, tgt, depth=depth - 1)
        options = tuple(f.option_values) if f.type in ("select", "multiselect") and f.options else None
        env[f.key] = ex.FieldSig(expr_type_of(f), target=target, options=options)
    return env


def check_expression(errors: Errors, location: str, text: Any, env, *, expect=None,
                     allow_prev: bool = False) -> ex.Compiled | None:
    if not isinstance(text, str):
        errors.append({"location": location, "message": "must be an expression (text) / 必须是表达式"})
        return None
    try:
        return ex.compile_expression(text, env, expect=expect, allow_prev=allow_prev)
    except ex.ExpressionError as exc:
        item = {"location": location, "message": exc.message}
        if getattr(exc, "position", None) is not None:
            item["position"] = exc.position
        errors.append(item)
        return None


def _check_key(errors: Errors, loc: str, key: str, *, reserved: frozenset, what: str) -> None:
    if not isinstance(key, str):
        return
    if key.lower() in reserved:
        errors.append({"location": loc, "message": f"{key!r} is a reserved word and cannot be a {what} key / "
                                                   f"{key!r} 是保留字，不能用作键"})
    if len(key) > MAX_KEY:
        errors.append({"location": loc, "message": f"keys are at most {MAX_KEY} characters / 键最多 {MAX_KEY} 个字符"})


def _check_field(errors: Errors, app: App, entity: Entity, f: Field, loc: str, *, in_subtable=False) -> None:
    _check_key(errors, f"{loc}.key", f.key, reserved=RESERVED_FIELD_KEYS, what="field")
    ft = REGISTRY.get(f.type)
    if ft is None:
        errors.append({"location": f"{loc}.type", "message": f"unknown field type {f.type!r}; known: "
                                                             f"{', '.join(sorted(REGISTRY))} / 未知字段类型"})
        return
    if f.type in ("select", "multiselect"):
        values = f.option_values
        if f.type == "select" and not values:
            errors.append({"location": f"{loc}.options", "message": "a select field needs options / 单选字段需要选项"})
        dup = {v for v in values if values.count(v) > 1}
        if dup:
            errors.append({"location": f"{loc}.options", "message": f"duplicate option values: {', '.join(sorted(dup))} / 选项重复"})
        if any(not v.strip() for v in values):
            errors.append({"location": f"{loc}.options", "message": "option values cannot be empty / 选项值不能为空"})
    if f.type == "lookup":
        if not f.target:
            errors.append({"location": f"{loc}.target", "message": "a lookup needs a target entity / 关联字段需要目标实体"})
        elif app.entity(f.target) is None:
            errors.append({"location": f"{loc}.target", "message": f"lookup target {f.target!r} is not an entity of this app / 目标实体不存在"})
    if f.type == "subtable":
        if in_subtable:
            errors.append({"location": f"{loc}.type", "message": "a subtable cannot contain a subtable / 子表不能嵌套"})
        if not f.fields:
            errors.append({"location": f"{loc}.fields", "message": "a subtable needs fields / 子表需要字段"})
        seen: set[str] = set()
        for j, sub in enumerate(f.fields):
            if sub.key in seen:
                errors.append({"location": f"{loc}.fields[{j}].key", "message": f"duplicate field key {sub.key!r} / 字段键重复"})
            seen.add(sub.key)
            if sub.type in ("formula", "rollup", "autonumber"):
                errors.append({"location": f"{loc}.fields[{j}].type", "message": f"{sub.type} is not available in a subtable / 子表不支持该类型"})
                continue
            _check_field(errors, app, entity, sub, f"{loc}.fields[{j}]", in_subtable=True)
    if f.type == "formula":
        if not f.expression:
            errors.append({"location": f"{loc}.expression", "message": "a formula needs an expression / 公式字段需要表达式"})
    if f.type == "rollup":
        _check_rollup(errors, app, entity, f, loc)
    if f.type == "autonumber" and f.format and "{0" not in f.format:
        errors.append({"location": f"{loc}.format", "message": "an autonumber format needs a counter such as {0000} / 自动编号格式需要计数占位符"})
    if f.default is not None and f.type not in ("formula", "rollup", "autonumber", "subtable"):
        try:
            ft.coerce(f.default, f)
        except FieldValueError as exc:
            errors.append({"location": f"{loc}.default", "message": f"default {f.default!r} {exc} / 默认值无效"})
    if f.min is not None and f.max is not None and f.min > f.max:
        errors.append({"location": f"{loc}.min", "message": "min is greater than max / 最小值大于最大值"})
    if f.max_length is not None and f.type == "text" and f.max_length > 10000:
        errors.append({"location": f"{loc}.max_length", "message": "use textarea for text longer than 10000 / 超长文本请用多行文本"})


def _check_rollup(errors: Errors, app: App, entity: Entity, f: Field, loc: str) -> None:
    spec = f.rollup or {}
    child = app.entity(spec.get("entity", ""))
    if child is None:
        errors.append({"location": f"{loc}.rollup.entity", "message": f"unknown entity {spec.get('entity')!r} / 实体不存在"})
        return
    via = child.field(spec.get("via", ""))
    if via is None or via.type != "lookup" or via.target != entity.key:
        errors.append({"location": f"{loc}.rollup.via", "message": f"{spec.get('via')!r} must be a lookup of {child.key} pointing at {entity.key} / 必须是指向本实体的关联字段"})
    agg = spec.get("agg")
    if agg != "count":
        fld = child.field(spec.get("field") or "")
        if fld is None:
            errors.append({"location": f"{loc}.rollup.field", "message": f"{agg} needs a numeric field of {child.key} / 需要数值字段"})
        elif expr_type_of(fld) != "number":
            errors.append({"location": f"{loc}.rollup.field", "message": f"{fld.key} is not numeric / 不是数值字段"})
    if not f.rollup:
        errors.append({"location": f"{loc}.rollup", "message": "a rollup needs a rollup spec / 汇总字段需要定义"})


def _check_expressions(errors: Errors, app: App, entity: Entity, f: Field, loc: str, env) -> None:
    for attr in ("visible_if", "required_if", "readonly_if"):
        text = getattr(f, attr)
        if text is not None:
            check_expression(errors, f"{loc}.{attr}", text, env, expect=ex.BOOL)
    if f.default_expression is not None:
        compiled = check_expression(errors, f"{loc}.default_expression", f.default_expression, env)
        _check_result(errors, f"{loc}.default_expression", compiled, f)
    if f.type == "formula" and f.expression:
        compiled = check_expression(errors, f"{loc}.expression", f.expression, env)
        if compiled is not None and f.result_type and compiled.result_type not in (f.result_type, ex.ANY, ex.NULL):
            errors.append({"location": f"{loc}.expression", "message": f"the expression gives {compiled.result_type}, "
                                                                      f"but result_type is {f.result_type} / 结果类型不符"})
    if f.type == "rollup" and (f.rollup or {}).get("filter"):
        child = app.entity(f.rollup["entity"])
        if child is not None:
            check_expression(errors, f"{loc}.rollup.filter", f.rollup["filter"], field_env(app, child), expect=ex.BOOL)


def _check_result(errors: Errors, loc: str, compiled, f: Field) -> None:
    if compiled is None:
        return
    want = expr_type_of(f)
    got = compiled.result_type
    if got in (ex.ANY, ex.NULL) or want == got or (want == "datetime" and got == "date"):
        return
    errors.append({"location": loc, "message": f"gives {got} but the field {f.key} holds {want} / 类型不符"})


def _formula_cycles(errors: Errors, entity: Entity, eloc: str) -> None:
    graph: dict[str, set[str]] = {}
    env_keys = {f.key for f in entity.fields}
    for f in entity.fields:
        if f.type == "formula" and f.expression:
            try:
                names = ex.compile_expression(f.expression, {k: ex.FieldSig(ex.ANY) for k in env_keys}).names
            except ex.ExpressionError:
                continue
            graph[f.key] = {n.split(".")[0] for n in names if n.split(".")[0] in graph or n in env_keys}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 2 or node not in graph:
            return
        if state.get(node) == 1:
            cycle = path[path.index(node):] + [node]
            idx = next(i for i, f in enumerate(entity.fields) if f.key == node)
            errors.append({"location": f"{eloc}.fields[{idx}].expression",
                           "message": f"formula cycle: {' → '.join(cycle)} / 公式循环引用"})
            return
        state[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, path + [node])
        state[node] = 2

    for key in list(graph):
        visit(key, [])


def _check_forms(errors: Errors, app: App) -> None:
    seen: set[str] = set()
    for i, form in enumerate(app.forms):
        loc = f"forms[{i}]"
        if form.get("key") in seen:
            errors.append({"location": f"{loc}.key", "message": f"duplicate form key {form.get('key')!r} / 表单键重复"})
        seen.add(form.get("key"))
        entity = app.entity(form.get("entity", ""))
        if entity is None:
            errors.append({"location": f"{loc}.entity", "message": f"unknown entity {form.get('entity')!r} / 实体不存在"})
            continue
        for s, section in enumerate(form.get("layout") or []):
            for j, key in enumerate(section.get("fields") or []):
                if entity.field(key) is None:
                    errors.append({"location": f"{loc}.layout[{s}].fields[{j}]",
                                   "message": f"unknown field {key!r} of {entity.key} / 字段不存在"})
        public = form.get("public")
        if isinstance(public, dict):
            for j, key in enumerate(public.get("fields") or []):
                if entity.field(key) is None:
                    errors.append({"location": f"{loc}.public.fields[{j}]", "message": f"unknown field {key!r} / 字段不存在"})
            for key in (public.get("set") or {}):
                if entity.field(key) is None:
                    errors.append({"location": f"{loc}.public.set.{key}", "message": f"unknown field {key!r} / 字段不存在"})
            rate = public.get("rate_limit")
            if rate is not None and not (isinstance(rate, str) and rate.split("/")[0].isdigit()
                                         and rate.endswith(("/hour", "/minute", "/day"))):
                errors.append({"location": f"{loc}.public.rate_limit", "message": "rate_limit is like 20/hour / 频率限制格式如 20/hour"})


def _check_permissions(errors: Errors, app: App) -> None:
    for i, perm in enumerate(app.permissions):
        loc = f"permissions[{i}]"
        if app.roles and perm.get("role") not in app.roles:
            errors.append({"location": f"{loc}.role", "message": f"unknown role {perm.get('role')!r}; roles: {', '.join(app.roles)} / 角色不存在"})
        ent_key = perm.get("entity")
        if ent_key == "*":
            continue
        entity = app.entity(ent_key or "")
        if entity is None:
            errors.append({"location": f"{loc}.entity", "message": f"unknown entity {ent_key!r} / 实体不存在"})
            continue
        for attr in ("hidden", "readonly"):
            for j, key in enumerate(perm.get(attr) or []):
                if entity.field(key) is None:
                    errors.append({"location": f"{loc}.{attr}[{j}]", "message": f"unknown field {key!r} / 字段不存在"})


def engine_errors(app: App) -> Errors:
    """Rules, flows, calendars, reports and dashboards, checked by their engines."""
    from engines import calendars as cal
    from engines import flows as fl
    from engines import rules as ru

    errors: Errors = []
    entities = {e.key: e for e in app.entities}
    envs: dict[str, dict] = {}

    def env_for(key: str) -> dict:
        if key not in envs:
            envs[key] = field_env(app, entities[key])
        return envs[key]

    errors.extend(ru.validate_rules(app.rules, entities, env_for))
    cal_keys = set()
    for i, spec in enumerate(app.calendars):
        cal_keys.add(spec.get("key"))
        errors.extend({"location": f"calendars[{i}]", "message": m} for m in cal.validate_spec(spec))
    seen_flows: set = set()
    for i, spec in enumerate(app.flows):
        entity = entities.get(spec.get("entity")) if isinstance(spec, dict) else None
        if entity is None:
            errors.append({"location": f"flows[{i}].entity", "message": f"unknown entity {spec.get('entity')!r} / 实体不存在"})
            continue
        if spec.get("entity") in seen_flows:
            errors.append({"location": f"flows[{i}].entity", "message": "an entity has at most one flow / 每个实体最多一个流程"})
        seen_flows.add(spec.get("entity"))
        sf = entity.field(spec.get("state_field") or "")
        if sf is None or sf.type != "select":
            errors.append({"location": f"flows[{i}].state_field", "message": "the state field must be a select field of the entity / 状态字段必须是单选字段"})
        else:
            missing = [s.get("key") for s in spec.get("states") or [] if isinstance(s, dict) and s.get("key") not in sf.option_values]
            if missing:
                errors.append({"location": f"flows[{i}].states", "message": f"states {', '.join(map(str, missing))} are not options of {sf.key} / 状态不是字段选项"})
        for item in fl.validate_flow(spec, env_for(entity.key), cal_keys):
            if item.get("level", "error") == "error":
                errors.append({**{k: v for k, v in item.items() if k != "level"},
                               "location": f"flows[{i}].{item['location']}".rstrip(".")})
    try:
        from engines import reports as rp
    except ImportError:
        rp = None
    if rp is not None:
        for i, spec in enumerate(app.reports):
            for item in rp.validate_report(app, spec):
                loc = item.get("location") or ""
                errors.append({**item, "location": loc if loc.startswith("reports[") else f"reports[{i}].{loc}".rstrip(".")})
        report_keys = {r.get("key") for r in app.reports}
        for i, dash in enumerate(app.dashboards):
            for j, w in enumerate(dash.get("widgets") or []):
                if not isinstance(w, dict) or w.get("report") not in report_keys:
                    errors.append({"location": f"dashboards[{i}].widgets[{j}].report",
                                   "message": f"unknown report {w.get('report') if isinstance(w, dict) else w!r} / 报表不存在"})
    return errors


def semantic_errors(doc: dict) -> Errors:
    errors: Errors = []
    try:
        app = App.from_dict(doc)
    except (KeyError, TypeError, ValueError) as exc:
        return [{"location": "$", "message": f"malformed metadata: {exc} / 元数据格式错误"}]
    if app.timezone:
        try:
            ZoneInfo(app.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            errors.append({"location": "timezone", "message": f"unknown time zone {app.timezone!r} / 未知时区"})
    seen_entities: set[str] = set()
    for i, entity in enumerate(app.entities):
        eloc = f"entities[{i}]"
        if entity.key in seen_entities:
            errors.append({"location": f"{eloc}.key", "message": f"duplicate entity key {entity.key!r} / 实体键重复"})
        seen_entities.add(entity.key)
        if entity.key in URL_WORDS:
            errors.append({"location": f"{eloc}.key", "message": f"{entity.key!r} is a word our URLs use / 该词为系统保留"})
        _check_key(errors, f"{eloc}.key", entity.key, reserved=frozenset(), what="entity")
        seen_fields: set[str] = set()
        ids: set[str] = set()
        for j, f in enumerate(entity.fields):
            floc = f"{eloc}.fields[{j}]"
            if f.key in seen_fields:
                errors.append({"location": f"{floc}.key", "message": f"duplicate field key {f.key!r} / 字段键重复"})
            seen_fields.add(f.key)
            if f.id and f.id in ids:
                errors.append({"location": f"{floc}.id", "message": f"duplicate field id {f.id!r} / 字段编号重复"})
            ids.add(f.id or "")
            _check_field(errors, app, entity, f, floc)
        if entity.title_field and entity.field(entity.title_field) is None:
            errors.append({"location": f"{eloc}.title_field", "message": f"title_field {entity.title_field!r} is not a field of {entity.key} / 标题字段不存在"})
        for j, key in enumerate(entity.assignee_fields):
            fld = entity.field(key)
            if fld is None or fld.type != "user":
                errors.append({"location": f"{eloc}.assignee_fields[{j}]", "message": f"{key!r} must be a user field / 必须是用户字段"})
    if errors:
        return errors
    for i, entity in enumerate(app.entities):
        env = field_env(app, entity)
        for j, f in enumerate(entity.fields):
            _check_expressions(errors, app, entity, f, f"entities[{i}].fields[{j}]", env)
        _formula_cycles(errors, entity, f"entities[{i}]")
    _check_forms(errors, app)
    _check_permissions(errors, app)
    errors.extend(engine_errors(app))
    return errors


def validate_app(doc: Any) -> Errors:
    if not isinstance(doc, dict):
        return [{"location": "$", "message": "app metadata must be a JSON object / 元数据必须是对象"}]
    errors = schema_errors(doc)
    if errors:
        return errors
    return semantic_errors(doc)


def ensure_valid(doc: Any) -> App:
    errors = validate_app(doc)
    if errors:
        raise DefinitionError(f"The app metadata has {len(errors)} error(s) / 元数据有 {len(errors)} 处错误", errors)
    return App.from_dict(doc)
