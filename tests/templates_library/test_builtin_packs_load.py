"""Every built-in pack loads with load_pack and is referentially sane.

Checks what a careless edit breaks: keys the builder refuses, references to fields, states,
roles, forms, reports and calendars that do not exist, expressions using functions outside the
language (CONTRACT §3) or comparing a select field with a value it does not offer, and sample data
whose columns, option values, lookups (1-based row numbers) or dates do not fit the entities.
The builder's own validation is the authority; this keeps the shipped data honest meanwhile.
"""
from __future__ import annotations

import ast
import keyword
import re
from datetime import date, datetime, timedelta, timezone

import pytest

from builder.validation import RESERVED_FIELD_KEYS, field_env, validate_app
from engines.flows import validate_flow
from engines.model import URL_WORDS, App
from templates_library.loader import list_builtin_packs, load_pack

NOW = datetime(2026, 3, 15, 10, 30, tzinfo=timezone(timedelta(hours=8)))
KEY = re.compile(r"^[a-z][a-z0-9_]*$")
CJK = re.compile(r"[\u4e00-\u9fff]")
# CONTRACT §2 and §3, on purpose: a built-in pack uses only what the contract promises
TYPES = {"text", "textarea", "number", "decimal", "currency", "percent", "boolean", "date", "datetime", "select",
         "multiselect", "email", "phone", "url", "user", "lookup", "subtable", "formula", "autonumber", "rating"}
NUMERIC = {"number", "decimal", "currency", "percent", "rating"}
SYSTEM = {"id": "number", "created_at": "datetime", "created_by": "user", "updated_at": "datetime",
          "updated_by": "user", "owner": "user", "_version": "number"}
FUNCTIONS = {"IF", "AND", "OR", "NOT", "ISBLANK", "LEN", "CONTAINS", "STARTSWITH", "LOWER", "UPPER", "ROUND",
             "MIN", "MAX", "ABS", "TODAY", "NOW", "DATE", "DAYS", "HOURS", "DAYS_BETWEEN", "YEAR", "MONTH",
             "COALESCE", "prev", "changed"}
# the builder's list (SQLite and PostgreSQL reserved words, Python keywords, system fields) and,
# to stay clear of them too, Python's soft keywords (`type` became one in 3.12)
RESERVED = RESERVED_FIELD_KEYS | set(keyword.softkwlist) | {"type"}
CHARTS = {"bar", "stacked_bar", "line", "pie", "donut", "funnel", "number", "table"}
KPI = {"count", "count_distinct", "sum", "avg", "min", "max", "nps", "csat", "ratio"}
PACKS = list_builtin_packs()


@pytest.fixture(scope="module", params=PACKS, ids=[p.name for p in PACKS])
def pack(request):
    return load_pack(request.param, now=NOW)


def entities(app):
    return {e["key"]: e for e in app["entities"]}


def fields(app, entity):
    return {f["key"]: f for f in entities(app)[entity]["fields"]}


def resolve(app, entity, path):
    """The field dict (or {"type": system type}) a dotted path names, or None."""
    head, _, rest = path.partition(".")
    if head in SYSTEM and not rest:
        return {"key": head, "type": SYSTEM[head]}
    f = fields(app, entity).get(head)
    if f is None or not rest:
        return f
    return resolve(app, f["target"], rest) if f["type"] == "lookup" else None


def options(field):
    return [o["value"] for o in field.get("options") or []]


def literals(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.List | ast.Tuple) and all(isinstance(e, ast.Constant) for e in node.elts):
        return {e.value for e in node.elts}
    return None


def results(node):
    """String values an expression can produce through its IF branches."""
    if isinstance(node, ast.IfExp):
        return results(node.body) | results(node.orelse)
    return {node.value} if isinstance(node, ast.Constant) and isinstance(node.value, str) else set()


def dotted(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return base and f"{base}.{node.attr}"
    return None


def check_expression(app, entity, text, where, target=None):
    """Parse with Python's grammar (the language is Python-like) and check every reference."""
    tree = ast.parse(text, mode="eval")
    problems = []
    callees = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if id(node) in callees and isinstance(node, ast.Name):
            continue
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name not in FUNCTIONS:
                problems.append(f"unknown function {ast.unparse(node.func)}")
        elif isinstance(node, ast.Attribute | ast.Name) and not isinstance(getattr(node, "ctx", None), ast.Store):
            path = dotted(node)
            if path is None:
                problems.append(f"attribute access on {ast.unparse(node)}")
            elif path not in FUNCTIONS | {"true", "false", "null"} and resolve(app, entity, path) is None:
                if not any(isinstance(p, ast.Attribute) and p.value is node for p in ast.walk(tree)):
                    problems.append(f"unknown field {path}")
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            for a, b in zip(sides, sides[1:], strict=False):
                for field_node, value_node in ((a, b), (b, a)):
                    path, values = dotted(field_node), literals(value_node)
                    f = resolve(app, entity, path) if path else None
                    if f and values and f["type"] in ("select", "multiselect") and not values <= set(options(f)):
                        problems.append(f"{path} has no option {sorted(values - set(options(f)))}")
    if target and target.get("type") == "select" and not results(tree.body) <= set(options(target)):
        problems.append(f"{target['key']} has no option {sorted(results(tree.body) - set(options(target)))}")
    assert not problems, f"{where}: {text!r}: {problems}"


def check_message(app, entity, message, where):
    for path in re.findall(r"\{([a-z_][a-z0-9_.]*)\}", message):
        assert resolve(app, entity, path), f"{where}: placeholder {{{path}}} names no field"


def check_actions(app, entity, actions, where):
    roles, ents = set(app["roles"]), entities(app)
    for i, action in enumerate(actions):
        (kind, spec), at = next(iter(action.items())), f"{where}.actions[{i}]"
        assert len(action) == 1 and kind in {"set", "notify", "add_tag", "create", "webhook", "assign", "survey",
                                             "transition"}, at
        if kind == "set":
            for key, expr in spec.items():
                target = fields(app, entity).get(key)
                assert target, f"{at}: set of unknown field {key}"
                check_expression(app, entity, expr, at, target)
        elif kind == "notify":
            check_message(app, entity, spec["message"], at)
            for to in spec["to"]:
                if ":" in to:
                    prefix, _, name = to.partition(":")
                    assert prefix in {"role", "team", "user"} and (prefix != "role" or name in roles), f"{at}: {to}"
                else:
                    f = resolve(app, entity, to)
                    assert f and f["type"] in ("user", "email"), f"{at}: cannot notify {to}"
        elif kind == "add_tag":
            assert spec in options(fields(app, entity)["tags"]), f"{at}: tag {spec} is not an option of tags"
        elif kind == "create":
            target = spec["entity"]
            assert target in ents, at
            for key, expr in spec["values"].items():
                f = fields(app, target).get(key)
                assert f, f"{at}: {target} has no field {key}"
                check_expression(app, entity, expr, at, f)
                if expr == "id":
                    assert f["type"] == "lookup" and f["target"] == entity, f"{at}: {key} does not point at {entity}"
        elif kind == "assign":
            assert spec["to"].startswith(("role:", "team:", "user:")), at


def test_envelope(pack):
    assert pack.name == pack.app["app"] and pack.source.endswith(pack.name)
    assert (pack.version, pack.format_version, pack.requires) == ("1.0.0", 1, {"jimu": ">=0.1"})
    for text in (pack.title, pack.description):
        cjk, latin = CJK.search(text), re.search(r"[A-Za-z]{3}", text)
        assert cjk and latin and cjk.start() < latin.start(), "bilingual, 中文 first"
    assert CJK.search(pack.app["label"]) and pack.app["timezone"] == "Asia/Shanghai"


def test_app_passes_the_builder_and_flow_validation(pack):
    assert validate_app(pack.app) == []
    app, calendars = App.from_dict(pack.app), {c["key"] for c in pack.app.get("calendars", [])}
    for flow in pack.app.get("flows", []):
        assert validate_flow(flow, field_env(app, app.entity(flow["entity"])), calendars) == [], flow["key"]


def test_entities_and_fields_use_safe_keys(pack):
    app = pack.app
    assert len(entities(app)) == len(app["entities"]), "duplicate entity key"
    for e in app["entities"]:
        assert KEY.match(e["key"]) and len(e["key"]) <= 40 and e["key"] not in URL_WORDS, e["key"]
        assert CJK.search(e["label"]) and e["title_field"] in fields(app, e["key"])
        assert len(fields(app, e["key"])) == len(e["fields"]), f"duplicate field key in {e['key']}"
        for f in e["fields"]:
            where = f"{e['key']}.{f['key']}"
            assert KEY.match(f["key"]) and len(f["key"]) <= 40, where
            assert f["key"] not in RESERVED and f["key"] not in SYSTEM, f"{where}: reserved word"
            assert f["type"] in TYPES and CJK.search(f["label"]), where
            if f["type"] in ("select", "multiselect"):
                assert all(KEY.match(o["value"]) and CJK.search(o["label"]) for o in f["options"]), where
                assert len(set(options(f))) == len(f["options"]), where
            if "default" in f and f["type"] == "select":
                assert f["default"] in options(f), where
            if f["type"] == "lookup":
                assert f["target"] in entities(app), where
            if f["type"] == "autonumber":
                assert "{0" in f["format"], where
            for key in ("default_expression", "visible_if", "required_if", "readonly_if", "expression"):
                if key in f:
                    check_expression(app, e["key"], f[key], where)
        for key in e.get("assignee_fields", []):
            assert fields(app, e["key"])[key]["type"] == "user"


def test_forms(pack):
    app = pack.app
    for form in app["forms"]:
        where, own = f"form {form['key']}", fields(app, form["entity"])
        assert CJK.search(form["label"]), where
        if "public" in form:
            public = form["public"]
            assert set(public["fields"]) <= set(own), where
            assert all(v in options(own[k]) for k, v in public["set"].items()), where
            assert re.match(r"^\d+/hour$", public["rate_limit"]), where
        else:
            placed = [k for section in form["layout"] for k in section["fields"]]
            assert set(placed) <= set(own) and len(placed) == len(set(placed)), where
            assert all(CJK.search(s["section"]) for s in form["layout"]), where


def test_rules(pack):
    app = pack.app
    for rule in app["rules"]:
        entity, where = rule["entity"], f"rule {rule['key']}"
        own = fields(app, entity)
        for key in ("condition", "expression"):
            if key in rule:
                check_expression(app, entity, rule[key], where, own.get(rule.get("target")))
        if rule["kind"] == "validate":
            assert rule["field"] in own and CJK.search(rule["message"]), where
        elif rule["kind"] == "compute":
            assert rule["target"] in own, where
        elif rule["kind"] == "score":
            assert own[rule["target"]]["type"] == "number", where
            for c in rule["components"]:
                check_expression(app, entity, c.get("condition") or c["expression"], where)
            bands = [b["value"] for b in rule["grades"]["bands"]]
            assert set(bands) == set(options(own[rule["grades"]["field"]])), where
        elif rule["kind"] == "assign":
            assert rule["target"] == "owner" or own[rule["target"]]["type"] == "user", where
            for route in [*rule["routes"], rule["fallback"]]:
                check_expression(app, entity, route.get("condition", "True"), where)
                assert route["to"].startswith(("team:", "user:", "role:")), where
                assert route.get("strategy", "round_robin") in {"round_robin", "least_loaded"}, where
        else:
            assert rule["kind"] == "automation", where
            assert set(rule["on"]) <= {"create", "update", "delete", "schedule"}, where
            if "schedule" in rule["on"]:
                schedule = rule["schedule"]
                assert "cron" in schedule or own[schedule["field"]]["type"] in ("date", "datetime"), where
            check_actions(app, entity, rule["actions"], where)


def test_flows(pack):
    app = pack.app
    forms, calendars = {f["key"]: f for f in app["forms"]}, {c["key"] for c in app.get("calendars", [])}
    for flow in app.get("flows", []):
        entity, where = flow["entity"], f"flow {flow['key']}"
        own, states = fields(app, entity), [s["key"] for s in flow["states"]]
        assert own[flow["state_field"]]["type"] == "select", where
        assert options(own[flow["state_field"]]) == states, f"{where}: state_field options != states"
        assert flow["initial"] in states and any(s.get("final") for s in flow["states"]), where
        for state in flow["states"]:
            for action in state.get("on_enter", []):
                if "survey" in action:
                    form = forms[action["survey"]["form"]]
                    assert any(f["type"] == "lookup" and f["target"] == entity
                               for f in fields(app, form["entity"]).values()), f"{where}: survey not linked"
                    assert resolve(app, entity, action["survey"]["to"])["type"] == "email", where
                else:
                    check_actions(app, entity, [action], f"{where}.{state['key']}")
        keys = [t["key"] for t in flow["transitions"]]
        assert len(keys) == len(set(keys)), where
        for t in flow["transitions"]:
            at = f"{where}.{t['key']}"
            sources = t["from"] if isinstance(t["from"], list) else [t["from"]]
            assert set(sources) <= set(states) and t["to"] in states and CJK.search(t["label"]), at
            assert set(t.get("roles", [])) <= set(app["roles"]) and set(t.get("require", [])) <= set(own), at
            if "condition" in t:
                check_expression(app, entity, t["condition"], at)
            if "approval" in t:
                assert t["approval"]["approvers"].removeprefix("role:") in app["roles"], at
            check_actions(app, entity, t.get("actions", []), at)
        for sla in flow["slas"]:
            at = f"{where}.sla.{sla['key']}"
            assert {sla["start"]["enter"], *sla["stop"]["enter"], *sla.get("pause_in", [])} <= set(states), at
            target = sla["target"]
            if "by" in target:
                assert set(target["hours"]) == set(options(own[target["by"]])), at
            assert sla.get("calendar", next(iter(calendars), None)) in calendars | {None}, at
            for action in sla["on_breach"]:
                if "transition" in action:
                    assert action["transition"] in keys, at
                else:
                    check_actions(app, entity, [action], at)


def test_reports_and_dashboards(pack):
    app = pack.app
    reports = {r["key"]: r for r in app["reports"]}
    assert len(reports) == len(app["reports"])
    for report in app["reports"]:
        entity, where = report["entity"], f"report {report['key']}"
        assert CJK.search(report["label"]), where
        if "filter" in report:
            check_expression(app, entity, report["filter"], where)
        kind = report.get("kind", "table")
        if kind == "funnel":
            assert set(report["stages"]) <= set(options(fields(app, entity)[report["stage_field"]])), where
        elif kind == "rfm":
            assert resolve(app, entity, report["customer"])["type"] == "lookup", where
            assert resolve(app, entity, report["date"])["type"] in ("date", "datetime"), where
            assert resolve(app, entity, report["amount"])["type"] in NUMERIC, where
        elif kind == "kpi":
            (measure, spec), = report["measure"].items()
            assert measure in KPI, where
            if measure == "ratio":
                for side in ("numerator", "denominator"):
                    check_expression(app, entity, spec[side], where)
            elif spec is not True:
                f = resolve(app, entity, spec)
                assert f and (measure not in ("sum", "avg", "nps", "csat") or f["type"] in NUMERIC), where
        else:
            assert report.get("chart", "bar") in CHARTS, where
            for g in [*report["group_by"], *report.get("columns", [])]:
                f = resolve(app, entity, g["field"] if isinstance(g, dict) else g)
                assert f, f"{where}: group by {g}"
                if isinstance(g, dict):
                    assert f["type"] in ("date", "datetime") and g["bucket"] in {"day", "week", "month", "quarter", "year"}
            for m in report["measures"]:
                assert m["agg"] in {"count", "count_distinct", "sum", "avg", "min", "max"}, where
                if m["agg"] in ("sum", "avg"):
                    assert resolve(app, entity, m["field"])["type"] in NUMERIC, where
                elif m["agg"] != "count":
                    assert resolve(app, entity, m["field"]), where
    temporal = ("date", "datetime")
    for board in app["dashboards"]:
        assert CJK.search(board["label"])
        for w in board["widgets"]:
            assert w["report"] in reports and 1 <= w["width"] <= 12, board["key"]
            if "date_field" in w:   # the date a dashboard's date range filters this widget on
                f = resolve(app, reports[w["report"]]["entity"], w["date_field"])
                assert f and f["type"] in temporal, f"{board['key']}: {w}"
        if "date_field" in board:
            assert any((resolve(app, reports[w["report"]]["entity"], board["date_field"]) or {}).get("type")
                       in temporal for w in board["widgets"]), board["key"]


def test_permissions(pack):
    app = pack.app
    scopes = {"none", "own", "team", "all"}
    for p in app["permissions"]:
        assert p["role"] in app["roles"], p
        assert p["entity"] == "*" or p["entity"] in entities(app), p
        assert {p.get(op, "none") for op in ("read", "update", "delete", "export")} <= scopes, p
        assert isinstance(p.get("create", False), bool), p
        for key in (*p.get("hidden", []), *p.get("readonly", [])):
            assert key in fields(app, p["entity"]), p
    assert {p["role"] for p in app["permissions"]} == set(app["roles"]), "a role without access"


def test_sample_data_fits_the_entities(pack):
    app = pack.app
    computed = {(r["entity"], r["target"]) for r in app["rules"] if r["kind"] in ("compute", "score")}
    computed |= {(r["entity"], r["grades"]["field"]) for r in app["rules"] if r["kind"] == "score"}
    state_fields = {(f["entity"], f["state_field"]) for f in app.get("flows", [])}
    order = list(pack.sample_data)
    assert sum(len(rows) for rows in pack.sample_data.values()) >= 300, "hundreds of sample rows"
    for entity, rows in pack.sample_data.items():
        own = fields(app, entity)
        columns = list(rows[0])
        for column in columns:
            f = own.get(column)
            assert f, f"{entity}: column {column} is not a field"
            assert f["type"] not in ("autonumber", "formula", "user"), f"{entity}.{column} is not data"
            assert (entity, column) not in computed | state_fields, f"{entity}.{column} is set by the engines"
        for key, f in own.items():
            if f.get("required") and "default" not in f and "default_expression" not in f:
                assert key in columns, f"{entity}: required {key} missing"
        for n, row in enumerate(rows, 1):
            for column, value in row.items():
                f, at = own[column], f"{pack.sample_files[entity]} row {n} {column}={value!r}"
                if value == "":
                    assert not f.get("required"), at
                    continue
                check_cell(pack, f, value, at, order.index(entity), order)


def check_cell(pack, f, value, at, position, order):
    kind = f["type"]
    if kind == "lookup":
        assert f["target"] in order[:position] or f["target"] == order[position], f"{at}: target loads later"
        assert 1 <= int(value) <= len(pack.sample_data[f["target"]]), at
    elif kind == "select":
        assert value in options(f), at
    elif kind == "multiselect":
        assert set(value.split(";")) <= set(options(f)), at
    elif kind in NUMERIC:
        number = float(value)
        assert f.get("min", number) <= number <= f.get("max", number), at
    elif kind == "boolean":
        assert value in ("true", "false"), at
    elif kind == "date":
        date.fromisoformat(value)
    elif kind == "datetime":
        moment = datetime.fromisoformat(value)
        assert moment.utcoffset() is not None and moment <= NOW, at
    elif kind == "phone":
        assert re.fullmatch(r"\+?[\d \-()]+", value) and 5 <= len(re.sub(r"\D", "", value)) <= 20, at
    elif kind == "email":
        assert re.fullmatch(r"[^@\s]+@example\.(com|cn)", value), at
    elif kind == "url":
        assert value.startswith("https://"), at


def test_csv_files_stay_small():
    for folder in PACKS:
        for csv_file in (folder / "data").glob("*.csv"):
            assert csv_file.stat().st_size <= 1024 * 1024, csv_file
