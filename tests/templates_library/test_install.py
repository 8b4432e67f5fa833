"""Planning and importing packs through the Python API, on SQLite and PostgreSQL.

The plan writes nothing; an import is one transaction (app, publish, teams, sample data through
the records pipeline) that leaves nothing behind when any part fails.
"""
from __future__ import annotations

import copy
import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from builder import store
from engines.errors import Conflict, DefinitionError, NotFound, PermissionDenied
from runtime import publish as pub
from runtime import system_tables as st
from runtime import users
from runtime.context import SYSTEM, Actor, Context
from templates_library.install import (
    export_app,
    import_pack,
    install_builtin_packs,
    plan_pack,
    referenced_teams,
)
from templates_library.loader import list_builtin_packs, load_pack

from .pack_helpers import helpdesk_app, pack_files, write_folder

NOW = datetime(2026, 3, 16, 10, 0, tzinfo=timezone(timedelta(hours=8)))


def load(tmp_path, version="1.0.0", **kw):
    return load_pack(write_folder(tmp_path / f"pack-{version}", pack_files(version, **kw)), now=NOW)


def snapshot(engine) -> dict:
    """What an import could write: tables, apps, teams, audit entries."""
    with engine.connect() as conn:
        return {"tables": sorted(sa.inspect(conn).get_table_names()),
                "apps": [a["app"] for a in store.list_apps(conn)],
                "teams": [r.key for r in conn.execute(sa.select(st.teams.c.key).order_by(st.teams.c.key))],
                "audit": conn.execute(sa.select(sa.func.count()).select_from(st.audit)).scalar_one()}


def do_import(services, pack, actor=SYSTEM, **kw):
    with services.engine.begin() as conn:
        return import_pack(Context(conn, actor, NOW), services, pack, **kw)


def test_plan_of_a_fresh_install_lists_everything_and_writes_nothing(services):
    pack = load_pack(next(p for p in list_builtin_packs() if p.name == "complaint_handling"), now=NOW)
    before = snapshot(services.engine)
    with services.engine.connect() as conn:
        plan = plan_pack(conn, pack)
    assert snapshot(services.engine) == before
    assert plan["action"] == "install" and plan["errors"] == [] and plan["conflicts"] == []
    assert plan["app"] == "complaint_handling" and plan["installed"] is None
    kinds = {(c["kind"], c["key"]) for c in plan["created"]}
    assert {("app", "complaint_handling"), ("entity", "ticket"), ("flow", "complaint_process"),
            ("dashboard", "service"), ("permission", "agent:ticket")} <= kinds
    assert "create table for ticket" in plan["migrations"]
    assert plan["teams"] == ["tech_support", "logistics_service", "billing_service", "customer_relations", "quality"]
    assert plan["sample_data"] == {"customer": 200, "ticket": 600, "survey": 300}


def test_import_creates_publishes_and_loads_sample_data_in_one_go(services, tmp_path):
    pack = load(tmp_path)
    out = do_import(services, pack, with_sample_data=True)
    assert out["action"] == "install" and out["revision"] == 1
    assert out["teams_created"] == ["vip_desk", "front_desk"]
    assert out["sample_data"] == {"customer": 2, "request": 3}
    with services.engine.begin() as conn:
        assert store.pack_info(conn, "helpdesk") == {"name": "helpdesk", "version": "1.0.0", "base": helpdesk_app()}
        ctx = Context(conn, SYSTEM, NOW)
        customers = services.records.list(ctx, "helpdesk", "customer", sort="id")["items"]
        requests = services.records.list(ctx, "helpdesk", "request", sort="id")["items"]
        teams = {t["key"]: t for t in users.list_teams(conn)}
    assert [c["name"] for c in customers] == ["华东精密机械", "北辰零售"]
    # lookups hold row numbers in the CSV and the ids of the created records in the database
    assert [r["customer"] for r in requests] == [customers[0]["id"], customers[1]["id"], customers[0]["id"]]
    # the pipeline ran: the compute rule graded by the customer's level, defaults applied
    assert [r["priority"] for r in requests] == ["high", "low", "high"]
    assert [r["topics"] for r in requests] == [["tech"], ["billing", "tech"], None]
    assert [r["amount"] for r in requests] == ["120.50", None, "0.00"]
    # the teams the rules route to exist (empty): routing falls back to the importer
    assert teams["vip_desk"] == {"key": "vip_desk", "label": "vip_desk", "members": [], "supervisor": None,
                                 "parent": None}


def test_a_second_import_of_the_same_version_is_a_no_op_upgrade(services, tmp_path):
    pack = load(tmp_path)
    do_import(services, pack)
    with services.engine.connect() as conn:
        plan = plan_pack(conn, pack)
    assert (plan["action"], plan["created"], plan["changed"], plan["conflicts"], plan["migrations"]) == (
        "upgrade", [], [], [], [])
    out = do_import(services, pack)
    assert out["revision"] == 1          # nothing new to publish


@pytest.mark.parametrize("owner", ["by hand", "another pack"])
def test_a_name_taken_by_another_app_is_a_conflict(services, tmp_path, owner):
    other = helpdesk_app()
    other["label"] = "我的服务台"
    if owner == "by hand":
        with services.engine.begin() as conn:
            pub.create_app(Context(conn, SYSTEM, NOW), other)
    else:
        do_import(services, load(tmp_path / "other", name="other_pack", sample={}))
    before = snapshot(services.engine)
    pack = load(tmp_path)
    with services.engine.connect() as conn:
        plan = plan_pack(conn, pack)
    assert plan["action"] == "conflict"
    assert plan["errors"][0]["location"] == "pack.yaml: app.app"
    assert "exists already" in plan["errors"][0]["message"]
    with pytest.raises(Conflict) as err:
        do_import(services, pack, with_sample_data=True)
    assert err.value.status == 409 and "helpdesk" in err.value.message
    assert snapshot(services.engine) == before


def test_a_row_the_pipeline_refuses_rolls_the_whole_import_back(services, tmp_path):
    app = helpdesk_app()
    app["rules"].append({"key": "no_free", "kind": "validate", "entity": "request",
                         "condition": "ISBLANK(amount) or amount > 0", "message": "金额必须大于 0", "field": "amount"})
    pack = load(tmp_path, app=app)
    before = snapshot(services.engine)
    with services.engine.connect() as conn:
        assert plan_pack(conn, pack)["errors"] == []     # only the pipeline can tell
    with pytest.raises(DefinitionError) as err:
        do_import(services, pack, with_sample_data=True)
    assert err.value.details == [{"location": "data/request.csv row 3, column amount", "message": "金额必须大于 0"}]
    assert snapshot(services.engine) == before
    # the catalog forgot the rolled-back revision: the same pack without the bad row installs fine
    fixed = load(tmp_path / "fixed", app=app, sample={"customer": "name\nA\n", "request": "subject,amount\nX,5\n"})
    assert do_import(services, fixed, with_sample_data=True)["sample_data"] == {"customer": 1, "request": 1}


def test_rows_may_point_at_earlier_rows_of_their_own_file(services, tmp_path):
    app = helpdesk_app()
    app["entities"][0]["fields"].append({"key": "parent", "type": "lookup", "label": "上级", "target": "customer"})
    rows = "name,parent\nA,\nB,1\nC,2\nD,1\n"
    pack = load(tmp_path, app=app, sample={"customer": rows})
    do_import(services, pack, with_sample_data=True)
    with services.engine.connect() as conn:
        items = services.records.list(Context(conn, SYSTEM, NOW), "helpdesk", "customer", sort="id")["items"]
    ids = [c["id"] for c in items]
    assert [c["parent"] for c in items] == [None, ids[0], ids[1], ids[0]]


def test_a_builder_imports_with_sample_data_a_user_may_not(services, tmp_path):
    with services.engine.begin() as conn:
        builder = users.create_user(conn, "bob", "Passw0rd-bob", "builder")
        plain = users.create_user(conn, "ann", "Passw0rd-ann", "user")
    bob = Actor(id=builder["id"], name="bob", role="builder")
    ann = Actor(id=plain["id"], name="ann", role="user")
    before = snapshot(services.engine)
    with pytest.raises(PermissionDenied):
        do_import(services, load(tmp_path), actor=ann, with_sample_data=True)
    assert snapshot(services.engine) == before
    # the app's permissions give bob no role, yet the pack's rows load (as part of the pack)
    out = do_import(services, load(tmp_path / "b"), actor=bob, with_sample_data=True)
    assert out["sample_data"] == {"customer": 2, "request": 3}
    with services.engine.connect() as conn:
        rows = services.records.list(Context(conn, SYSTEM, NOW), "helpdesk", "request")["items"]
    assert {r["owner"] for r in rows} == {bob.id}      # nobody in the routed teams yet: the importer


def test_a_pack_needing_a_newer_jimu_is_refused(services, tmp_path):
    pack = dataclasses.replace(load(tmp_path), requires={"jimu": ">=99"})
    with services.engine.connect() as conn:
        plan = plan_pack(conn, pack)
    assert plan["errors"][0]["location"] == "pack.yaml: requires.jimu"
    assert "needs Jimu >=99" in plan["errors"][0]["message"]
    with pytest.raises(DefinitionError):
        do_import(services, pack)


def test_export_strips_store_ids_and_keeps_the_pack_identity(services, tmp_path):
    do_import(services, load(tmp_path))
    with services.engine.connect() as conn:
        exported = export_app(conn, "helpdesk")
        assert "id" in store.get_draft(conn, "helpdesk")["entities"][0]
    assert (exported.name, exported.version, exported.title) == ("helpdesk", "1.0.0", "服务台")
    assert exported.app == helpdesk_app() and exported.sample_data == {}
    with services.engine.connect() as conn, pytest.raises(NotFound):
        export_app(conn, "nope")
    with services.engine.begin() as conn:
        draft_only = copy.deepcopy(helpdesk_app())
        draft_only["app"] = "unpublished"
        pub.create_app(Context(conn, SYSTEM, NOW), draft_only)
    with services.engine.connect() as conn, pytest.raises(Conflict):
        export_app(conn, "unpublished")


def test_referenced_teams_come_from_rules_and_flows():
    doc = {"rules": [{"routes": [{"to": "team:east"}], "fallback": {"to": "team:desk"}},
                     {"actions": [{"notify": {"to": ["team:east", "role:x", "user:team"]}}]}],
           "flows": [{"transitions": [{"actions": [{"assign": {"to": "team:level2"}}]}]}],
           "forms": [{"label": "team:not_a_rule"}]}
    assert referenced_teams(doc) == ["east", "desk", "level2"]


def test_builtin_library_installs_once_and_gives_demo_users_work(services):
    with services.engine.begin() as conn:
        agent = users.create_user(conn, "agent", "Passw0rd-agent", "user")
        manager = users.create_user(conn, "manager", "Passw0rd-manager", "builder")
    first = install_builtin_packs(services, with_sample_data=False)
    assert sorted(r["app"] for r in first) == sorted(p.name for p in list_builtin_packs())
    assert {r["action"] for r in first} == {"install"}
    again = install_builtin_packs(services, with_sample_data=False)
    assert {r["action"] for r in again} == {"skipped"}
    with services.engine.connect() as conn:
        teams = {t["key"]: t for t in users.list_teams(conn)}
        a, m = users.get_user(conn, agent["id"]), users.get_user(conn, manager["id"])
    assert {"tech_support", "shanghai_sales", "service_east"} <= set(teams)
    for team in teams.values():
        assert team["members"] == ["agent", "manager"] and team["supervisor"] == "manager"
    assert a["app_roles"]["complaint_handling"] == ["agent"]
    assert m["app_roles"]["complaint_handling"] == ["agent", "manager", "supervisor"]
    assert a["app_roles"]["lead_routing"] == ["sales_rep"]
    assert set(m["app_roles"]) == {p.name for p in list_builtin_packs()}
