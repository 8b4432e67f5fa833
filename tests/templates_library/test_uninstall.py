"""Uninstalling an app keeping its data (``templates_library.uninstall``), on SQLite and PostgreSQL.

The plan counts what goes and changes nothing; the uninstall writes the full export, checks it,
then removes the app and everything of it at run time but the audit log, leaving other apps as they
were; the export installs the app again with the same records, in the same and in a fresh database;
every refusal and every failure half-way leaves the database exactly as it was.
"""
from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from builder import store
from engines.errors import Conflict, DefinitionError, NotFound, PermissionDenied, ValidationFailed
from runtime import audit, users
from runtime import system_tables as st
from runtime.context import SYSTEM, Actor, Context
from templates_library.loader import load_pack
from templates_library.uninstall import plan_uninstall, uninstall_app
from web.app import build_services

from .pack_helpers import pack_files, write_folder
from .uninstall_support import app_rows, install, install_helpdesk, record_values, snapshot

COMPLAINTS = "complaint_handling"


@pytest.fixture
def admin(services) -> Actor:
    with services.engine.begin() as conn:
        user = users.create_user(conn, "root", "Passw0rd-root", "admin")
    return Actor(id=user["id"], name="root", role="admin")


def plan(svc, actor, app_key, target=None):
    with svc.engine.connect() as conn:
        return plan_uninstall(Context(conn, actor), app_key, target)


def uninstall(svc, actor, app_key, target, **kw):
    with svc.engine.begin() as conn:
        return uninstall_app(Context(conn, actor), svc.catalog, app_key, target, **kw)


def table_names(svc) -> set[str]:
    with svc.engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def seed_runtime_rows(svc, app_key: str, entity: str, user_id: int) -> None:
    """A share, a saved view, an app-role grant, a notification, a task, an unsent and a sent
    message: rows of the runtime tables that carry the app's key."""
    now = datetime.now(UTC)
    with svc.engine.begin() as conn:
        conn.execute(st.shares.insert().values(app=app_key, entity=entity, record_id=1, user_id=user_id,
                                               access="read", created_at=now))
        conn.execute(st.saved_views.insert().values(user_id=user_id, app=app_key, entity=entity, name="mine",
                                                    query="{}"))
        conn.execute(st.app_roles.insert().values(user_id=user_id, app=app_key, role="agent"))
        conn.execute(st.notifications.insert().values(user_id=user_id, created_at=now, app=app_key, entity=entity,
                                                      record_id=1, message="hello"))
        conn.execute(st.tasks.insert().values(kind="task", title="call back", app=app_key, entity=entity,
                                              record_id=1, assignee_id=user_id, payload="{}", created_at=now))
        for status in ("pending", "sent"):
            conn.execute(st.outbox.insert().values(created_at=now, channel="notify", app=app_key, entity=entity,
                                                   record_id=1, payload="{}", status=status, next_attempt_at=now))


# ---------------------------------------------------------------------- plan
def test_the_plan_counts_what_goes_and_changes_nothing(services, admin, tmp_path):
    install(services, COMPLAINTS)
    install_helpdesk(services, tmp_path)
    before = snapshot(services.engine)
    target = tmp_path / "out.zip"
    answer = plan(services, admin, COMPLAINTS, target)
    assert answer["records"] == {"customer": 200, "survey": 300, "ticket": 600}
    assert {t["table"]: (t["entity"], t["rows"]) for t in answer["tables"]} == {
        "e_complaint_handling_customer": ("customer", 200), "e_complaint_handling_survey": ("survey", 300),
        "e_complaint_handling_ticket": ("ticket", 600)}
    rows = answer["rows"]
    assert rows["flow_instances"] == 600 and rows["timers"] > 0 and rows["public_tokens"] == 1
    assert rows["counters"] > 0 and rows["tables"] == 3
    assert answer["metadata"] == {"revisions": 1, "published_revision": 1, "draft_unpublished": False}
    assert answer["kept"]["audit_entries"] > 0
    assert "status" in answer["export"]["recomputed_on_import"]["ticket"]
    assert answer["errors"] == [] and answer["export"]["target"] == str(target)
    # a plan is only a plan
    assert snapshot(services.engine) == before and not target.exists()
    # and it names what would refuse the uninstall
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    errors = plan(services, admin, COMPLAINTS, tmp_path / "full")["errors"]
    assert errors[0]["location"] == "export" and "not empty" in errors[0]["message"]


# ---------------------------------------------------------------------- uninstall, then install again
def test_uninstall_keeps_the_data_and_a_reimport_brings_it_back(services, fresh_services, admin, tmp_path):
    install(services, COMPLAINTS)
    install_helpdesk(services, tmp_path)
    seed_runtime_rows(services, COMPLAINTS, "ticket", admin.id)
    records = record_values(services, COMPLAINTS)
    assert len(records["ticket"]) == 600 and any(r["customer"] for r in records["ticket"])
    other_records = record_values(services, "helpdesk")
    other_rows = app_rows(services.engine, "helpdesk")
    audit_before = app_rows(services.engine, COMPLAINTS)["jimu_audit"]
    with services.engine.begin() as conn:
        # counters of other apps, one whose name only a LIKE pattern's '_' would take for ours
        for name in ("rr:helpdesk:request:team:vip_desk", "rr:complaintXhandling:ticket:team:x"):
            conn.execute(st.counters.insert().values(name=name, value=3))
        other_counters = sorted(r.name for r in conn.execute(sa.select(st.counters.c.name))
                                if COMPLAINTS not in r.name)

    target = tmp_path / "kept" / "complaints.zip"
    out = uninstall(services, admin, COMPLAINTS, target)

    export = out["export"]
    assert export["path"] == str(target) and target.is_file()
    assert export["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
    assert export["records"] == {"customer": 200, "ticket": 600, "survey": 300} and export["archive_only"] == []
    assert out["removed"]["tables"] == 3 and out["removed"]["revisions"] == 1
    assert out["removed"]["outbox_unsent"] == 1 and out["removed"]["shares"] == 1
    # the tables and every row of the app are gone, but for the audit log and the delivery log
    assert not {n for n in table_names(services) if n.startswith("e_complaint_handling")}
    left = app_rows(services.engine, COMPLAINTS)
    assert left.pop("jimu_audit") == audit_before + 1
    assert left.pop("jimu_outbox") == 1
    assert set(left.values()) == {0}, left
    with services.engine.connect() as conn:
        assert not store.app_exists(conn, COMPLAINTS)
        assert conn.execute(sa.select(sa.func.count()).select_from(store.revisions_table)
                            .where(store.revisions_table.c.app == COMPLAINTS)).scalar_one() == 0
        counters = [r.name for r in conn.execute(sa.select(st.counters.c.name))]
        with pytest.raises(NotFound):
            services.catalog.get(conn, COMPLAINTS)
        entry = audit.query(conn, app=COMPLAINTS, action="metadata", limit=1)[0]
    assert sorted(counters) == other_counters
    assert entry["user"] == "root" and entry["summary"].startswith("uninstalled app complaint_handling")
    assert entry["details"]["export"]["path"] == str(target) and entry["details"]["export"]["sha256"]
    assert entry["details"]["records"] == {"customer": 200, "survey": 300, "ticket": 600}
    assert entry["details"]["app_roles"] == [{"user": "root", "role": "agent"}]
    # the other app is as it was
    assert record_values(services, "helpdesk") == other_records
    assert app_rows(services.engine, "helpdesk") == other_rows

    # the export installs the app again with the same records, here and in an empty database
    install(services, target)
    assert record_values(services, COMPLAINTS) == records
    other = fresh_services()
    install(other, target)
    assert record_values(other, COMPLAINTS) == records


def test_lookups_that_point_forward_or_in_a_cycle_and_empty_records(services, fresh_services, admin, tmp_path):
    app = {"app": "org", "label": "组织", "entities": [
        {"key": "unit", "label": "部门", "title_field": "name", "fields": [
            {"key": "name", "type": "text", "label": "名称"},
            {"key": "parent", "type": "lookup", "label": "上级", "target": "unit"},
            {"key": "head", "type": "lookup", "label": "负责人", "target": "person"}]},
        {"key": "person", "label": "人员", "title_field": "name", "fields": [
            {"key": "name", "type": "text", "label": "姓名", "required": True},
            {"key": "unit", "type": "lookup", "label": "部门", "target": "unit"}]}]}
    install(services, write_folder(tmp_path / "org", pack_files(app=app, name="org", sample={})), sample=False)
    with services.engine.begin() as conn:
        ctx = Context(conn, SYSTEM)
        sales = services.records.create(ctx, "org", "unit", {"name": "销售部"})
        head_office = services.records.create(ctx, "org", "unit", {"name": "总部"})
        # a unit pointing at a later one, a person in it and its head: a cycle between the entities
        services.records.update(ctx, "org", "unit", sales["id"], {"parent": head_office["id"]})
        wang = services.records.create(ctx, "org", "person", {"name": "王伟", "unit": sales["id"]})
        services.records.update(ctx, "org", "unit", sales["id"], {"head": wang["id"]})
        services.records.create(ctx, "org", "unit", {})           # a record without any value
    records = record_values(services, "org")

    out = uninstall(services, admin, "org", tmp_path / "org-export")
    pack = load_pack(tmp_path / "org-export")
    # the unit pointed at comes first, so the data loads in order
    assert [r["name"] for r in pack.sample_data["unit"]] == ["总部", "销售部"]
    assert pack.sample_data["unit"][1]["parent"] == "1" and pack.sample_data["person"][0]["unit"] == "2"
    # what data/ cannot carry is said, and kept in archive/
    assert {"entity": "unit", "records": 1, "why": "no value an import takes / 没有可导入的值"} in \
        out["export"]["archive_only"]
    assert any(g.get("field") == "head" and g["values"] == 1 for g in out["export"]["archive_only"])
    archive = (tmp_path / "org-export" / "archive" / "e_org_unit.csv").read_text("utf-8-sig").splitlines()
    assert archive[0].startswith("id,created_at") and len(archive) == 4 and "销售部" in archive[1]

    other = fresh_services()
    install(other, tmp_path / "org-export")
    back = record_values(other, "org")
    assert back["person"] == records["person"]
    assert {r["name"]: r["parent"] for r in back["unit"]} == {"总部": None, "销售部": {"title": "总部"}}


# ---------------------------------------------------------------------- refusals change nothing
BUILDER = Actor(id=None, name="bob", role="builder")
USER = Actor(id=None, name="ann", role="user")


def _folder_with_a_file(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.md").write_text("mine")
    return tmp_path / "taken"


def _zip_with_bytes(tmp_path):
    (tmp_path / "old.zip").write_bytes(b"PK old")
    return tmp_path / "old.zip"


def _under_a_file(tmp_path):
    (tmp_path / "plain").write_text("a file, not a folder")
    return tmp_path / "plain" / "export.zip"


def _other_kind_of_file(tmp_path):
    (tmp_path / "notes.txt").write_text("")
    return tmp_path / "notes.txt"


@pytest.mark.parametrize("who, app_key, make_target, error", [
    # only platform admins
    (BUILDER, "helpdesk", None, PermissionDenied),
    (USER, "helpdesk", None, PermissionDenied),
    # no such app, or a key that is no key at all
    ("admin", "nope", None, NotFound),
    ("admin", "../helpdesk", None, NotFound),
    # the export target exists and is not empty
    ("admin", "helpdesk", _folder_with_a_file, Conflict),
    ("admin", "helpdesk", _zip_with_bytes, Conflict),
    # it cannot be written
    ("admin", "helpdesk", _under_a_file, ValidationFailed),
    ("admin", "helpdesk", _other_kind_of_file, ValidationFailed),
], ids=["builder", "user", "unknown-app", "hostile-key", "folder-not-empty", "zip-not-empty", "under-a-file",
        "not-a-zip"])
def test_refusals_change_nothing(services, admin, tmp_path, who, app_key, make_target, error):
    install_helpdesk(services, tmp_path)
    actor = admin if who == "admin" else who
    target = make_target(tmp_path) if make_target else tmp_path / "out.zip"
    files_before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    before = snapshot(services.engine)
    with pytest.raises(error) as caught:
        uninstall(services, actor, app_key, target)
    assert caught.value.message and "/" in caught.value.message      # English / 中文
    assert snapshot(services.engine) == before
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == files_before
    if error is PermissionDenied:
        with pytest.raises(PermissionDenied):
            plan(services, actor, app_key)


# ---------------------------------------------------------------------- failures half-way change nothing
def _write_then_fail(real):
    def write(export, out):
        real(export, out)
        raise OSError(28, "No space left on device")
    return write


def _write_then_spoil(real):
    def write(export, out):
        path = real(export, out)
        (path / "archive" / "tables.csv").write_text("spoilt")
        return path
    return write


@pytest.mark.parametrize("failure", ["write", "verify", "drop"])
def test_a_failure_half_way_leaves_the_app_installed(services, admin, tmp_path, monkeypatch, failure):
    import runtime.app_removal as removal
    import templates_library.uninstall as un
    install_helpdesk(services, tmp_path)
    before = snapshot(services.engine)
    records = record_values(services, "helpdesk")
    target = tmp_path / "deep" / "export"
    if failure == "write":        # the disk fills up while the export is written
        monkeypatch.setattr(un, "write_full_export", _write_then_fail(un.write_full_export))
        expected = Conflict
    elif failure == "verify":     # what was written does not read back as written
        monkeypatch.setattr(un, "write_full_export", _write_then_spoil(un.write_full_export))
        expected = DefinitionError
    else:                         # one table dropped, then the next drop fails
        real = removal.drop_record_tables

        def drop(conn, names):
            real(conn, names[:1])
            raise sa.exc.OperationalError("DROP TABLE", {}, Exception("could not obtain lock"))
        monkeypatch.setattr(removal, "drop_record_tables", drop)
        expected = Conflict
    with pytest.raises(expected):
        uninstall(services, admin, "helpdesk", target)
    assert snapshot(services.engine) == before
    assert record_values(services, "helpdesk") == records
    assert not (tmp_path / "deep").exists()      # what the export wrote is removed again


def test_another_process_sees_the_app_installed_again(services, db_url, admin, tmp_path):
    # its revisions are numbered from 1 again: a catalog that cached the old app must not serve it
    install_helpdesk(services, tmp_path)
    other = build_services(db_url, "Asia/Shanghai")          # another web process on the same database
    try:
        with other.engine.connect() as conn:
            old_ids = [e.id for e in other.catalog.get(conn, "helpdesk").app.entities]
        uninstall(services, admin, "helpdesk", tmp_path / "helpdesk.zip")
        with other.engine.connect() as conn, pytest.raises(NotFound):
            other.catalog.get(conn, "helpdesk")
        install(services, tmp_path / "helpdesk.zip")
        with other.engine.connect() as conn:
            again = other.catalog.get(conn, "helpdesk")
        with services.engine.connect() as conn:
            new_ids = [e.id for e in services.catalog.get(conn, "helpdesk").app.entities]
        assert again.revision == 1 and [e.id for e in again.app.entities] == new_ids != old_ids
    finally:
        other.engine.dispose()
