"""Fields on pages: the layout of an entity's form, turning posted form data into a record body,
wire values into input values and into readable text, and the choices of lookup/user pickers.

Everything here goes through the records service (so pickers and titles obey permissions); the
server stays the authority on values: a posted string is handed to the service as it is and the
field types coerce and check it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import sqlalchemy as sa

from engines.errors import JimuError
from engines.field_types import REGISTRY
from engines.model import Entity, Field, Option
from runtime import system_tables as st

from .app import services
from .i18n import gettext as _

PICKER_LIMIT = 200


@dataclass
class Section:
    title: str
    columns: int
    fields: list[Field]


def state_field(capp, entity_key: str) -> str | None:
    flow = capp.app.flow_for(entity_key)
    return flow.get("state_field") if isinstance(flow, dict) else None


def entity_form(app, entity_key: str) -> dict | None:
    """The first form of the entity (its layout drives the generated form)."""
    return next((f for f in app.forms if f.get("entity") == entity_key and not f.get("public")), None) \
        or next((f for f in app.forms if f.get("entity") == entity_key), None)


def with_state_labels(app, entity: Entity) -> dict[str, Field]:
    """The entity's fields by key; a workflow's state field shows the states' labels."""
    fields = entity.field_map
    flow = app.flow_for(entity.key)
    key = flow.get("state_field") if isinstance(flow, dict) else None
    if key in fields:
        states = [Option(str(s.get("key")), str(s.get("label") or s.get("key")))
                  for s in flow.get("states") or [] if isinstance(s, dict) and s.get("key")]
        if states:
            fields[key] = replace(fields[key], options=states)
    return fields


def layout(app, entity: Entity, hidden=frozenset()) -> list[Section]:
    """Sections of the first form of the entity, else one section with every field."""
    form = entity_form(app, entity.key)
    fields = with_state_labels(app, entity)
    sections: list[Section] = []
    if form and form.get("layout"):
        for sec in form["layout"]:
            chosen = [fields[k] for k in sec.get("fields") or [] if k in fields and k not in hidden]
            columns = sec.get("columns") if sec.get("columns") in (1, 2, 3) else 1
            sections.append(Section(str(sec.get("section") or ""), columns, chosen))
    else:
        sections.append(Section("", 1, [fields[f.key] for f in entity.fields if f.key not in hidden]))
    return [s for s in sections if s.fields]


def editable(f: Field, access, state: str | None) -> bool:
    return not (REGISTRY[f.type].computed or f.key in access.readonly or f.key in access.hidden
                or f.key == state)


def parse_form(fields: list[Field], form) -> dict:
    """A record body from posted form data: one entry per field the form showed."""
    body: dict = {}
    for f in fields:
        name = f"f_{f.key}"
        if f.type == "multiselect":
            if f"{name}__present" in form:
                body[f.key] = [v for v in form.getlist(name) if v]
            continue
        if f.type == "subtable":
            if f"{name}__present" in form:
                body[f.key] = _subtable_rows(f, form)
            continue
        if name not in form:
            continue
        raw = form.get(name, "")
        body[f.key] = None if raw.strip() == "" else raw
    return body


def _subtable_rows(f: Field, form) -> list[dict]:
    rows: dict[int, dict] = {}
    prefix = f"f_{f.key}["
    for name in form:
        if not name.startswith(prefix):
            continue
        try:
            idx_text, sub = name[len(prefix):].split("][", 1)
            idx, sub = int(idx_text), sub.rstrip("]")
        except ValueError:
            continue
        value = form.get(name, "")
        if value.strip():
            rows.setdefault(idx, {})[sub] = value
    return [rows[i] for i in sorted(rows)]


def input_value(f: Field, value) -> str:
    """The value an input shows for a wire value."""
    if value is None:
        return ""
    if f.type == "datetime" and isinstance(value, str):
        return value[:19]
    if f.type == "boolean":
        return "true" if value else "false"
    return str(value)


def display(f: Field, value, refs: dict | None = None) -> str:
    """A wire value as text for lists, cards and read-only fields (escaped by the template)."""
    if value is None or value == "" or value == []:
        return ""
    if f.type == "select":
        return f.option_label(value)
    if f.type == "multiselect":
        return ", ".join(f.option_label(v) for v in value)
    if f.type == "boolean":
        return _("Yes") if value else _("No")
    if f.type in ("lookup", "user"):
        return (refs or {}).get((f.key, value)) or f"#{value}"
    if f.type == "datetime" and isinstance(value, str):
        return value[:16].replace("T", " ")
    if f.type == "percent":
        return f"{value}%"
    if f.type == "rating":
        return "★" * int(value) if isinstance(value, int) and 0 <= value <= 10 else str(value)
    if f.type == "subtable":
        return _("%(n)s rows", n=len(value))
    return str(value)


def record_title(entity: Entity, rec: dict) -> str:
    if entity.title_field and rec.get(entity.title_field) not in (None, ""):
        f = entity.field(entity.title_field)
        return display(f, rec[entity.title_field]) if f else str(rec[entity.title_field])
    return f"#{rec.get('id')}"


def user_names(conn, ids) -> dict[int, str]:
    ids = sorted({i for i in ids if isinstance(i, int)})
    if not ids:
        return {}
    u = st.users
    rows = conn.execute(sa.select(u.c.id, u.c.name, u.c.display_name).where(u.c.id.in_(ids)))
    return {r.id: r.display_name or r.name for r in rows}


def titles_of(ctx, app_key: str, capp, target_key: str, ids) -> dict[int, str]:
    """Titles of the readable records among ``ids`` (others stay unnamed)."""
    ids = sorted({i for i in ids if isinstance(i, int)})
    if not ids:
        return {}
    target = capp.entity(target_key)
    fields = ["id"] + ([target.title_field] if target.title_field else [])
    try:
        access = services().records.access(ctx, capp, target_key)
        if target.title_field in access.hidden:
            fields = ["id"]
        out = services().records.list(ctx, app_key, target_key, filter=f"id in [{', '.join(map(str, ids))}]",
                                      page_size=len(ids), fields=fields)
    except JimuError:
        return {}
    return {r["id"]: record_title(target, r) for r in out["items"]}


def refs_for(ctx, app_key: str, capp, entity: Entity, records: list[dict], fields: list[Field]) -> dict:
    """{(field key, id): text} for the lookup and user values shown on a page."""
    refs: dict = {}
    users_wanted: set = set()
    for f in fields:
        if f.type not in ("user", "lookup"):
            continue   # only ids name other rows (a multiselect's list is not even hashable)
        values = {r.get(f.key) for r in records} - {None}
        if not values:
            continue
        if f.type == "user":
            users_wanted |= values
        elif f.type == "lookup" and f.target:
            for rid, title in titles_of(ctx, app_key, capp, f.target, values).items():
                refs[(f.key, rid)] = title
    names = user_names(ctx.conn, users_wanted | {r.get("owner") for r in records})
    for f in fields:
        if f.type == "user":
            for r in records:
                if r.get(f.key) in names:
                    refs[(f.key, r[f.key])] = names[r[f.key]]
    for r in records:
        if r.get("owner") in names:
            refs[("owner", r["owner"])] = names[r["owner"]]
    return refs


def picker_choices(ctx, app_key: str, capp, fields: list[Field]) -> dict[str, list[tuple[int, str]]]:
    """Choices of lookup and user inputs: readable target records (newest first) and active users."""
    out: dict[str, list[tuple[int, str]]] = {}
    for f in fields:
        if f.type == "lookup" and f.target:
            target = capp.entity(f.target)
            try:
                rows = services().records.list(ctx, app_key, f.target, sort="-id", page_size=PICKER_LIMIT)["items"]
            except JimuError:
                rows = []
            out[f.key] = [(r["id"], record_title(target, r)) for r in rows]
        elif f.type == "user":
            u = st.users
            rows = ctx.conn.execute(sa.select(u.c.id, u.c.name, u.c.display_name).where(u.c.active.is_(True))
                                    .order_by(u.c.name).limit(PICKER_LIMIT))
            out[f.key] = [(r.id, r.display_name or r.name) for r in rows]
    return out


def widget(f: Field) -> str:
    return REGISTRY[f.type].widget
