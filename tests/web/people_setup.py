"""A small CRM with roles, teams and people for the permission, share and IDOR tests.

Roles: ``agent`` (own), ``supervisor`` (team), ``manager`` (all) on tickets; ``viewer`` reads every
ticket but changes none; ``clerk`` reads own tickets, hides ``cost`` and may not write ``severity``.
Teams: east (ann, ben, eve), west (mia, wes), north (sam).
"""
from __future__ import annotations

import copy

import pytest
from argon2 import PasswordHasher

from tests.conftest import Api, make_user

TICKET_FIELDS = [
    {"key": "subject", "type": "text", "label": "主题", "required": True},
    {"key": "customer", "type": "lookup", "label": "客户", "target": "customer"},
    {"key": "severity", "type": "select", "label": "级别", "options": [
        {"value": "low", "label": "低"}, {"value": "high", "label": "高"}], "default": "low"},
    {"key": "cost", "type": "currency", "label": "成本"},
    {"key": "assignee", "type": "user", "label": "处理人"},
    {"key": "code", "type": "text", "label": "编号", "unique": True},
    {"key": "band", "type": "number", "label": "档位"},
]

APP = {
    "app": "perm",
    "label": "权限测试",
    "roles": ["agent", "supervisor", "manager", "viewer", "clerk"],
    "entities": [
        {"key": "customer", "label": "客户", "title_field": "name", "fields": [
            {"key": "name", "type": "text", "label": "名称", "required": True},
            {"key": "revenue", "type": "currency", "label": "年收入"},
        ]},
        {"key": "ticket", "label": "工单", "title_field": "subject", "assignee_fields": ["assignee"],
         "fields": TICKET_FIELDS},
    ],
    # a rule reads the hidden cost: its trace must not carry cost to those who may not see it
    "rules": [{"key": "cost_band", "kind": "compute", "entity": "ticket", "target": "band",
               "expression": "ROUND(COALESCE(cost, 0) / 1000, 0)"}],
    "permissions": [
        {"role": "agent", "entity": "ticket", "create": True, "read": "own", "update": "own", "delete": "own",
         "export": "own"},
        {"role": "supervisor", "entity": "ticket", "create": True, "read": "team", "update": "team",
         "delete": "team", "export": "team"},
        {"role": "manager", "entity": "ticket", "create": True, "read": "all", "update": "all", "delete": "all",
         "export": "all"},
        {"role": "manager", "entity": "customer", "create": True, "read": "all", "update": "all"},
        {"role": "viewer", "entity": "ticket", "read": "all", "export": "all"},
        {"role": "clerk", "entity": "ticket", "create": True, "read": "own", "update": "own", "export": "own",
         "hidden": ["cost"], "readonly": ["severity"]},
        {"role": "clerk", "entity": "customer", "read": "all", "hidden": ["revenue"]},
    ],
}

PEOPLE = {   # name -> (app role, team)
    "ann": ("agent", "east"), "ben": ("supervisor", "east"), "eve": ("agent", "east"),
    "mia": ("manager", "west"), "wes": ("agent", "west"), "sam": ("agent", "north"),
    "vic": ("viewer", "north"), "cle": ("clerk", "north"),
}


@pytest.fixture
def fast_hashing(monkeypatch):
    """Cheap argon2 parameters: these tests make many users and check permissions, not hashing."""
    from runtime import users
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


class People:
    def __init__(self, flask_app, api: Api):
        self.flask_app, self.api = flask_app, api
        self.users: dict[str, dict] = {}
        self.clients: dict[str, Api] = {}

    def __getitem__(self, name: str) -> Api:
        return self.clients[name]

    def id(self, name: str) -> int:
        return self.users[name]["id"]

    def ticket(self, owner: str, **values) -> dict:
        body = {"subject": f"ticket of {owner}", "owner": self.id(owner), **values}
        st, rec = self.api.post("/apps/perm/ticket", body)
        assert st == 201, rec
        return rec


def setup_people(flask_app, api: Api, make_app, doc: dict | None = None) -> People:
    make_app(copy.deepcopy(doc or APP))
    for key in ("east", "west", "north"):
        st, body = api.post("/teams", {"key": key, "label": key})
        assert st == 201, body
    people = People(flask_app, api)
    for name, (role, team) in PEOPLE.items():
        user = make_user(flask_app, name, "user", teams=[team], app_roles={"perm": [role]})
        people.users[name] = user
        people.clients[name] = Api(flask_app.test_client(), user["token"])
    return people
