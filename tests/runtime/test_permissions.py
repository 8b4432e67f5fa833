"""The permission layer on its own, on both back ends: how a user's roles combine (union of scopes,
hidden and read-only fields), tokens narrowing their user, the public actor, and what each scope's
row filter lets through (owner, assignee fields, user and team shares, teams and the teams one
supervises, sub-teams), with no share ever granting a delete."""
from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from engines.errors import PermissionDenied
from runtime import publish, users
from runtime import system_tables as st
from runtime.context import SYSTEM, Actor, Context
from runtime.permissions import access_for, check_filter_paths, public_actor, row_filter

NOW = datetime(2026, 3, 1, tzinfo=UTC)
DOC = {
    "app": "acl",
    "label": "权限",
    "roles": ["a", "b", "c", "d"],
    "entities": [
        {"key": "account", "label": "客户", "title_field": "name", "fields": [
            {"key": "name", "type": "text", "label": "名称"},
            {"key": "revenue", "type": "currency", "label": "收入"},
        ]},
        {"key": "deal", "label": "商机", "title_field": "title", "assignee_fields": ["helper"], "fields": [
            {"key": "title", "type": "text", "label": "标题"},
            {"key": "account", "type": "lookup", "label": "客户", "target": "account"},
            {"key": "amount", "type": "currency", "label": "金额"},
            {"key": "margin", "type": "percent", "label": "毛利"},
            {"key": "stage", "type": "text", "label": "阶段"},
            {"key": "helper", "type": "user", "label": "协助人"},
        ]},
    ],
    "permissions": [
        {"role": "a", "entity": "deal", "create": True, "read": "own", "update": "own", "hidden": ["margin", "amount"],
         "readonly": ["stage"]},
        {"role": "b", "entity": "deal", "read": "team", "export": "own", "hidden": ["margin"]},
        {"role": "c", "entity": "*", "read": "all", "delete": "team"},
        {"role": "d", "entity": "deal", "read": "own", "update": "all", "hidden": ["amount"], "readonly": ["title"]},
        {"role": "b", "entity": "account", "read": "all", "hidden": ["revenue"]},
    ],
}


@pytest.fixture
def acl(services, monkeypatch):
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    with services.engine.begin() as conn:
        ctx = Context(conn, SYSTEM)
        publish.create_app(ctx, copy.deepcopy(DOC))
        publish.publish(ctx, services.catalog, "acl")
        return services


def capp_of(svc, conn):
    return svc.catalog.get(conn, "acl")


def actor(roles, *, uid=1, teams=(), supervised=(), scope=None, apps=None, role="user"):
    return Actor(id=uid, name="u", role=role, teams=frozenset(teams), supervised_teams=frozenset(supervised),
                 app_roles={"acl": frozenset(roles)}, token_scope=scope,
                 token_apps=None if apps is None else frozenset(apps))


# Each case: the user's app roles, then expected scopes (create, read, update, delete, export),
# hidden and read-only fields of `deal`.
CASES = [
    # one role: its entry, missing operations are none; hidden fields are read-only too
    (["a"], ("all", "own", "own", "none", "none"), {"margin", "amount"}, {"margin", "amount", "stage"}),
    # two roles: the widest scope per operation; a field is hidden only when both hide it
    (["a", "b"], ("all", "team", "own", "none", "own"), {"margin"}, {"margin", "amount", "stage"}),
    # a "*" entry applies to every entity and adds its scopes
    (["a", "c"], ("all", "all", "own", "team", "none"), set(), {"margin", "amount", "stage"}),
    # read-only only when every entry that lets them write makes it read-only (hidden counts as not writable)
    (["a", "d"], ("all", "own", "all", "none", "none"), {"amount"}, {"amount"}),
    # no role of the app: no access at all
    ([], ("none",) * 5, set(), set()),
]


@pytest.mark.parametrize("roles, scopes, hidden, readonly", CASES)
def test_roles_combine_as_a_union(acl, roles, scopes, hidden, readonly):
    with acl.engine.connect() as conn:
        access = access_for(actor(roles), capp_of(acl, conn), "deal")
    assert tuple(access.scope(op) for op in ("create", "read", "update", "delete", "export")) == scopes
    assert {h for h in access.hidden if "." not in h} == hidden
    assert {h for h in access.readonly if "." not in h} == readonly


def test_fields_unreadable_through_a_lookup_are_hidden_paths(acl):
    with acl.engine.connect() as conn:
        capp = capp_of(acl, conn)
        b_ = access_for(actor(["b"]), capp, "deal")          # reads accounts, but not their revenue
        assert {h for h in b_.hidden if "." in h} == {"account.revenue"}
        a_ = access_for(actor(["a"]), capp, "deal")          # no right on accounts at all
        assert {"account.name", "account.revenue", "account.owner", "account.id"} <= a_.hidden
        assert not access_for(actor([], role="admin"), capp, "deal").hidden


def test_tokens_narrow_their_user_and_admins_see_everything(acl):
    with acl.engine.connect() as conn:
        capp = capp_of(acl, conn)
        read_token = access_for(actor(["a", "d"], scope="read"), capp, "deal")
        assert [read_token.scope(op) for op in ("create", "read", "update", "delete", "export")] == \
            ["none", "own", "none", "none", "none"]
        assert access_for(actor(["c"], apps=["other"]), capp, "deal").scope("read") == "none"
        assert access_for(actor(["c"], apps=["acl"]), capp, "deal").scope("read") == "all"
        admin = access_for(actor([], role="admin"), capp, "deal")
        assert admin.scope("delete") == "all" and not admin.hidden
        assert access_for(actor([], role="admin", scope="read"), capp, "deal").scope("update") == "none"
        assert access_for(actor([], role="admin", apps=["other"]), capp, "deal").scope("read") == "none"
        assert access_for(SYSTEM, capp, "deal").scope("update") == "all"
        # a builder is no admin of records
        assert access_for(actor([], role="builder"), capp, "deal").scope("read") == "none"


def test_the_public_actor_only_creates_on_its_form_entity(acl):
    with acl.engine.connect() as conn:
        capp = capp_of(acl, conn)
        pub = access_for(public_actor("acl", "deal"), capp, "deal")
        assert pub.scopes == {"create": "all"}
        assert access_for(public_actor("acl", "deal"), capp, "account").scopes == {}
        assert row_filter(public_actor("acl", "deal"), capp, "deal", "own") is not None


def test_an_app_without_permissions_is_open_to_signed_in_users_but_not_the_public(acl):
    doc = copy.deepcopy(DOC)
    doc.pop("permissions")
    with acl.engine.begin() as conn:
        ctx = Context(conn, SYSTEM)
        publish.put_draft(ctx, "acl", doc)
        publish.publish(ctx, acl.catalog, "acl")
    with acl.engine.connect() as conn:
        capp = capp_of(acl, conn)
        assert access_for(actor([]), capp, "deal").scope("delete") == "all"
        assert access_for(Actor(id=None, name="public", role="public"), capp, "deal").scopes == {}
        assert access_for(public_actor("acl", "account"), capp, "deal").scopes == {}


def _person(conn, name, teams=()):
    return users.create_user(conn, name, None, "user", teams=list(teams))["id"]


def test_row_filters_of_each_scope(acl):
    svc = acl
    with svc.engine.begin() as conn:
        for key, parent in (("sales", None), ("east", "sales"), ("east_sub", "east"), ("west", None)):
            conn.execute(st.teams.insert().values(key=key, label=key, parent=parent))
        ids = {n: _person(conn, n, t) for n, t in (("ann", ["east"]), ("bob", ["east"]), ("cat", ["east_sub"]),
                                                     ("dan", ["west"]), ("boss", []))}
        conn.execute(st.teams.update().where(st.teams.c.key == "sales").values(supervisor_id=ids["boss"]))
        capp = capp_of(svc, conn)
        table = capp.tables["deal"]
        rows = {}
        for title, owner, helper in (("ann's", "ann", None), ("bob's", "bob", None), ("cat's", "cat", None),
                                     ("dan's", "dan", None), ("dan helped by ann", "dan", "ann"),
                                     ("dan shared with ann", "dan", None), ("dan shared with east", "dan", None),
                                     ("dan shared edit with ann", "dan", None)):
            rows[title] = conn.execute(table.insert().returning(table.c.id).values(
                title=title, owner=ids[owner], helper=ids[helper] if helper else None, _version=1,
                created_at=NOW, updated_at=NOW)).scalar_one()
        for title, user, team, access in (("dan shared with ann", "ann", None, "read"),
                                          ("dan shared with east", None, "east", "read"),
                                          ("dan shared edit with ann", "ann", None, "edit")):
            conn.execute(st.shares.insert().values(app="acl", entity="deal", record_id=rows[title],
                                                   user_id=ids[user] if user else None, team=team, access=access,
                                                   created_at=NOW))

    def visible(name, scope, **kw):
        with svc.engine.connect() as conn:
            who = users.load_actor(conn, ids[name])
            capp = capp_of(svc, conn)
            t = capp.tables["deal"]
            q = sa.select(t.c.title)
            clause = row_filter(who, capp, "deal", scope, **kw)
            if clause is not None:
                q = q.where(clause)
            return {r[0] for r in conn.execute(q)}

    shared_with_ann = {"dan shared with ann", "dan shared with east", "dan shared edit with ann"}
    assert visible("ann", "own") == {"ann's", "dan helped by ann"} | shared_with_ann
    assert visible("ann", "own", for_write=True) == {"ann's", "dan helped by ann", "dan shared edit with ann"}
    assert visible("ann", "own", for_write=True, shares=False) == {"ann's", "dan helped by ann"}
    assert visible("ann", "team") == {"ann's", "bob's", "dan helped by ann"} | shared_with_ann
    assert visible("ann", "none") == set()
    assert len(visible("ann", "all")) == len(rows)
    assert visible("dan", "own") == {"dan's", "dan helped by ann"} | shared_with_ann
    # the supervisor of "sales" sees its sub-teams east and east_sub (any depth), and their shares
    assert visible("boss", "team") == {"ann's", "bob's", "cat's", "dan helped by ann", "dan shared with east"}
    assert visible("boss", "own") == {"dan shared with east"}


def test_filters_cannot_reach_into_fields_unreadable_through_a_lookup(acl):
    with acl.engine.connect() as conn:
        capp = capp_of(acl, conn)
        check_filter_paths(actor(["b"]), capp, "deal", "account.name == 'x'")        # readable there
        with pytest.raises(PermissionDenied) as info:
            check_filter_paths(actor(["b"]), capp, "deal", "account.revenue > 10")   # hidden there
        assert info.value.details == {"filter": ["account.revenue"]}
        with pytest.raises(PermissionDenied):
            check_filter_paths(actor(["a"]), capp, "deal", "account.name == 'x'")    # no read on account
        check_filter_paths(actor([], role="admin"), capp, "deal", "account.revenue > 10")
        check_filter_paths(actor(["a"]), capp, "deal", "account.nope == 1")          # left to the query layer
