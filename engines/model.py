"""The typed model of metadata: the vocabulary every floor shares.

Plain dataclasses built from already validated JSON (``App.from_dict``). They keep the original
dict (``raw``) so that the store can round-trip exactly what the user wrote. This module owns the
shapes and small lookups on them; validation of the documents lives in ``builder``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

SYSTEM_FIELDS = ("id", "created_at", "created_by", "updated_at", "updated_by", "owner", "_version")

# Words our URLs use: entity keys cannot take them.
URL_WORDS = frozenset({"draft", "publish", "revisions", "simulate", "reports", "dashboards", "export",
                       "import", "board", "new", "tasks", "uninstall"})


@dataclass
class Option:
    value: str
    label: str
    color: str | None = None

    @classmethod
    def from_raw(cls, raw: Any) -> Option:
        if isinstance(raw, dict):
            value = str(raw.get("value"))
            return cls(value=value, label=str(raw.get("label") or value), color=raw.get("color"))
        return cls(value=str(raw), label=str(raw))


@dataclass
class Field:
    key: str
    type: str
    label: str
    id: str | None = None
    help: str | None = None
    required: bool = False
    unique: bool = False
    indexed: bool = False
    default: Any = None
    default_expression: str | None = None
    visible_if: str | None = None
    required_if: str | None = None
    readonly_if: str | None = None
    options: list[Option] = field(default_factory=list)
    max_length: int | None = None
    min: float | None = None
    max: float | None = None
    scale: int = 2
    target: str | None = None          # lookup target entity key
    format: str | None = None          # autonumber format
    expression: str | None = None      # formula
    result_type: str | None = None     # formula result type
    rollup: dict | None = None         # rollup spec {entity, via, agg, field?, filter?}
    fields: list[Field] = field(default_factory=list)  # subtable columns
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, raw: dict) -> Field:
        return cls(
            key=raw["key"], type=raw["type"], label=str(raw.get("label") or raw["key"]),
            id=raw.get("id"), help=raw.get("help"), required=bool(raw.get("required", False)),
            unique=bool(raw.get("unique", False)), indexed=bool(raw.get("indexed", False)),
            default=raw.get("default"), default_expression=raw.get("default_expression"),
            visible_if=raw.get("visible_if"), required_if=raw.get("required_if"),
            readonly_if=raw.get("readonly_if"),
            options=[Option.from_raw(o) for o in raw.get("options") or []],
            max_length=raw.get("max_length"), min=raw.get("min"), max=raw.get("max"),
            scale=int(raw.get("scale", 2)), target=raw.get("target"), format=raw.get("format"),
            expression=raw.get("expression"), result_type=raw.get("result_type"),
            rollup=raw.get("rollup"),
            fields=[Field.from_dict(f) for f in raw.get("fields") or []],
            raw=raw,
        )

    @property
    def option_values(self) -> list[str]:
        return [o.value for o in self.options]

    @property
    def option_set(self) -> frozenset[str]:
        """The option values for membership tests, worked out once (metadata is not mutated after load)."""
        cached = self.__dict__.get("_option_set")
        if cached is None:
            cached = self.__dict__["_option_set"] = frozenset(o.value for o in self.options)
        return cached

    def option_label(self, value: Any) -> str:
        for o in self.options:
            if o.value == value:
                return o.label
        return "" if value is None else str(value)


@dataclass
class Entity:
    key: str
    label: str
    fields: list[Field]
    id: str | None = None
    title_field: str | None = None
    assignee_fields: list[str] = field(default_factory=list)
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, raw: dict) -> Entity:
        return cls(key=raw["key"], label=str(raw.get("label") or raw["key"]),
                   fields=[Field.from_dict(f) for f in raw.get("fields") or []],
                   id=raw.get("id"), title_field=raw.get("title_field"),
                   assignee_fields=list(raw.get("assignee_fields") or []), raw=raw)

    def field(self, key: str) -> Field | None:
        return self.field_map.get(key)

    @cached_property
    def field_map(self) -> dict[str, Field]:
        # metadata objects are never mutated after they are built from a document
        return {f.key: f for f in self.fields}


@dataclass
class App:
    key: str
    label: str
    entities: list[Entity]
    timezone: str | None = None
    roles: list[str] = field(default_factory=list)
    forms: list[dict] = field(default_factory=list)
    rules: list[dict] = field(default_factory=list)
    flows: list[dict] = field(default_factory=list)
    calendars: list[dict] = field(default_factory=list)
    reports: list[dict] = field(default_factory=list)
    dashboards: list[dict] = field(default_factory=list)
    permissions: list[dict] = field(default_factory=list)
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, raw: dict) -> App:
        return cls(key=raw["app"], label=str(raw.get("label") or raw["app"]),
                   entities=[Entity.from_dict(e) for e in raw.get("entities") or []],
                   timezone=raw.get("timezone"), roles=list(raw.get("roles") or []),
                   forms=list(raw.get("forms") or []), rules=list(raw.get("rules") or []),
                   flows=list(raw.get("flows") or []), calendars=list(raw.get("calendars") or []),
                   reports=list(raw.get("reports") or []),
                   dashboards=list(raw.get("dashboards") or []),
                   permissions=list(raw.get("permissions") or []), raw=raw)

    def entity(self, key: str) -> Entity | None:
        for e in self.entities:
            if e.key == key:
                return e
        return None

    def form(self, key: str) -> dict | None:
        return next((f for f in self.forms if f.get("key") == key), None)

    def report(self, key: str) -> dict | None:
        return next((r for r in self.reports if r.get("key") == key), None)

    def dashboard(self, key: str) -> dict | None:
        return next((d for d in self.dashboards if d.get("key") == key), None)

    def flow_for(self, entity_key: str) -> dict | None:
        return next((f for f in self.flows if f.get("entity") == entity_key), None)

    def rules_for(self, entity_key: str) -> list[dict]:
        return [r for r in self.rules if r.get("entity") == entity_key]
