"""templates_library.loader: reading packs safely, relative dates, dump round trips.

Every hostile pack is built in tmp_path by the test itself and must be refused with a
DefinitionError whose message names the problem.
"""
from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
from datetime import datetime, timedelta, timezone

import pytest

from engines.errors import Conflict, DefinitionError
from templates_library.loader import Pack, dump_pack, list_builtin_packs, load_pack, resolve_relative
from templates_library.safe_yaml import dump_yaml

CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 3, 15, 10, 30, tzinfo=CST)

GOOD_MANIFEST = {
    "pack": "demo_pack",
    "format_version": 1,
    "version": "1.0.0",
    "title": "演示 Demo",
    "requires": {"jimu": ">=0.1"},
    "app": {"app": "demo_pack", "rules": [{"key": "r", "kind": "automation", "on": ["create"]}]},
    "sample_data": {"customer": "data/customers.csv"},
}
GOOD_CSV = "name,since,last_seen\n华东精密机械有限公司,@today-30,@now-36h\nBluewave Ltd.,2025-01-02,\n"


def write_folder(root, manifest=None, files=None):
    """A pack folder: pack.yaml (a dict is dumped, a str written as is) + files."""
    root.mkdir(parents=True, exist_ok=True)
    manifest = GOOD_MANIFEST if manifest is None else manifest
    text = manifest if isinstance(manifest, str) else dump_yaml(manifest)
    (root / "pack.yaml").write_text(text, encoding="utf-8")
    files = {"data/customers.csv": GOOD_CSV} if files is None else files
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return root


def zip_bytes(entries, manifest=None):
    """Zip content: pack.yaml + (name, content) entries, in that order."""
    manifest = GOOD_MANIFEST if manifest is None else manifest
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if manifest is not False:
            zf.writestr("pack.yaml", manifest if isinstance(manifest, str) else dump_yaml(manifest))
        for name, content in entries:
            zf.writestr(name, content)
    return buf.getvalue()


def with_manifest(**changes):
    doc = dict(GOOD_MANIFEST)
    for key, value in changes.items():
        if value is ...:
            doc.pop(key)
        else:
            doc[key] = value
    return doc


def bomb_bytes(size):
    """A zip with one CSV of `size` repeated bytes: tiny compressed, huge declared."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("pack.yaml", dump_yaml(GOOD_MANIFEST))
        with zf.open("data/customers.csv", "w", force_zip64=True) as fh:
            chunk = b"a" * (1024 * 1024)
            for _ in range(size // len(chunk)):
                fh.write(chunk)
    return buf.getvalue()


def lying_bytes():
    """A zip whose CSV declares 30 bytes but holds far more: the reader must not trust it."""
    data = bytearray(zip_bytes([("data/customers.csv", "name\n" + "x\n" * 200_000)]))
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (pos := data.find(signature, start)) >= 0:
            name_len = struct.unpack_from("<H", data, pos + (26 if signature == b"PK\x03\x04" else 28))[0]
            name_at = pos + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at:name_at + name_len] == b"data/customers.csv":
                struct.pack_into("<I", data, pos + size_offset, 30)
            start = pos + 4
    return bytes(data)


def symlink_zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("pack.yaml", dump_yaml(GOOD_MANIFEST))
        info = zipfile.ZipInfo("data/customers.csv")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def escaping_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("name\nsecret\n", encoding="utf-8")
    root = write_folder(tmp_path / "pack", files={})
    (root / "data").mkdir()
    os.symlink(outside / "secret.csv", root / "data" / "customers.csv")
    return root


def too_many_rows(tmp_path):
    return write_folder(tmp_path / "p", files={"data/customers.csv": "name\n" + "x\n" * 100_001})


def duplicate_zip_entries():
    with pytest.warns(UserWarning, match="Duplicate name"):
        return zip_bytes([("data/customers.csv", GOOD_CSV), ("data/customers.csv", GOOD_CSV)])


HOSTILE = [
    # (id, build(tmp_path) -> path or bytes, words the message must name)
    ("missing pack key", lambda t: write_folder(t / "p", with_manifest(pack=...)), "missing required key 'pack'"),
    ("bad version", lambda t: write_folder(t / "p", with_manifest(version="1.0")), "MAJOR.MINOR.PATCH"),
    ("version not a string", lambda t: write_folder(t / "p", with_manifest(version=1.5)), "MAJOR.MINOR.PATCH"),
    ("bad pack name", lambda t: write_folder(t / "p", with_manifest(pack="Bad-Name")), "pack name"),
    ("app not an object", lambda t: write_folder(t / "p", with_manifest(app=["x"])), "app must be an object"),
    ("missing app", lambda t: write_folder(t / "p", with_manifest(app=...)), "missing required key 'app'"),
    ("bad requires.jimu", lambda t: write_folder(t / "p", with_manifest(requires={"jimu": "latest"})),
     "version spec"),
    ("unknown top-level key", lambda t: write_folder(t / "p", with_manifest(sampledata={})), "unknown key"),
    ("pack.yaml not a mapping", lambda t: write_folder(t / "p", "- pack\n- app\n"), "must be a mapping"),
    ("python object tag", lambda t: write_folder(t / "p", "pack: !!python/object/apply:os.system ['echo hi']\n"),
     "python/object/apply:os.system"),
    ("duplicate yaml keys", lambda t: write_folder(t / "p", "pack: a_pack\nversion: 1.0.0\npack: b_pack\n"),
     "duplicate key 'pack'"),
    ("yaml alias", lambda t: write_folder(t / "p", "pack: &p x_pack\ntitle: *p\n"), "aliases"),
    ("broken yaml", lambda t: write_folder(t / "p", "pack: [unclosed\n"), "invalid YAML"),
    ("unknown format_version", lambda t: write_folder(t / "p", with_manifest(format_version=2)),
     "unsupported format_version 2; supported: 1"),
    ("absolute sample path", lambda t: write_folder(t / "p", with_manifest(sample_data={"customer": "/etc/passwd.csv"})),
     "absolute path not allowed"),
    ("dotdot sample path", lambda t: write_folder(t / "p", with_manifest(sample_data={"customer": "data/../../x.csv"})),
     "'..' not allowed"),
    ("sample path outside data/", lambda t: write_folder(t / "p", with_manifest(sample_data={"customer": "c.csv"})),
     "under data/"),
    ("missing csv", lambda t: write_folder(t / "p", files={}), "data/customers.csv is not in the pack"),
    ("empty csv header", lambda t: write_folder(t / "p", files={"data/customers.csv": ""}), "empty CSV header"),
    ("blank csv header", lambda t: write_folder(t / "p", files={"data/customers.csv": ",\n1,2\n"}), "empty CSV header"),
    ("duplicate csv columns", lambda t: write_folder(t / "p", files={"data/customers.csv": "name,name\n1,2\n"}),
     "duplicate column"),
    ("more cells than header", lambda t: write_folder(t / "p", files={"data/customers.csv": "name\na,b\n"}),
     "more cells"),
    ("gbk csv", lambda t: write_folder(t / "p", files={"data/customers.csv": "名称\n华东机械\n".encode("gbk")}),
     "not UTF-8"),
    ("nul byte in csv", lambda t: write_folder(t / "p", files={"data/customers.csv": "name\na\x00b\n"}),
     "NUL character"),
    ("unclosed quote in csv", lambda t: write_folder(t / "p", files={"data/customers.csv": 'name\n"a\n' + "x" * 140_000}),
     "malformed CSV"),
    ("bad relative date", lambda t: write_folder(t / "p", files={"data/customers.csv": "name,since\na,@today-x\n"}),
     "unknown relative date '@today-x'"),
    ("too many rows", too_many_rows, "more than 100,000 rows"),
    ("py file in folder", lambda t: write_folder(t / "p", files={"data/customers.csv": GOOD_CSV, "setup.py": "x"}),
     "file type not allowed"),
    ("symlink escaping folder", escaping_symlink, "symlink points outside the pack"),
    ("no pack.yaml in zip", lambda t: zip_bytes([("data/customers.csv", GOOD_CSV)], manifest=False), "no pack.yaml"),
    ("zip slip", lambda t: zip_bytes([("data/customers.csv", GOOD_CSV), ("../../evil.csv", "x")]), "'..' not allowed"),
    ("absolute zip entry", lambda t: zip_bytes([("/etc/evil.csv", "x")]), "absolute path not allowed"),
    ("backslash zip entry", lambda t: zip_bytes([("..\\evil.csv", "x")]), "use '/'"),
    ("py file in zip", lambda t: zip_bytes([("data/customers.csv", GOOD_CSV), ("hooks/run.py", "import os")]),
     "file type not allowed in a pack: 'hooks/run.py'"),
    ("symlink in zip", lambda t: symlink_zip(), "symlinks are not allowed"),
    ("duplicate zip entries", lambda t: duplicate_zip_entries(), "duplicate entry"),
    ("too many entries", lambda t: zip_bytes([(f"doc{i}.md", "x") for i in range(201)]), "more than 200"),
    ("zip bomb 51 MB", lambda t: bomb_bytes(51 * 1024 * 1024), "uncompressed size over 50 MB"),
    ("csv over 20 MB", lambda t: bomb_bytes(21 * 1024 * 1024), "larger than 20 MB"),
    ("lying declared size", lambda t: lying_bytes(), "cannot read entry"),
    ("pack.yaml over 1 MB", lambda t: zip_bytes([], manifest="# " + "x" * (1024 * 1024) + "\n"), "larger than 1 MB"),
    ("not a zip", lambda t: b"PK\x03\x04 certainly not a zip", "not a valid zip file"),
    ("no pack at path", lambda t: t / "nothing-here", "no pack here"),
]


@pytest.mark.parametrize("build, expected", [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_pack_is_refused_naming_the_problem(tmp_path, build, expected):
    source = build(tmp_path)
    with pytest.raises(DefinitionError) as caught:
        load_pack(source, now=NOW)
    err = caught.value
    assert expected in err.message
    assert err.code == "validation_failed" and err.status == 422
    assert err.details and all(set(d) == {"location", "message"} for d in err.details)
    assert expected in err.details[0]["message"] or expected in err.details[0]["location"]


def test_every_schema_problem_is_reported_at_once(tmp_path):
    bad = with_manifest(pack="X", version="one", app=[], requires={"jimu": "?"})
    with pytest.raises(DefinitionError) as caught:
        load_pack(write_folder(tmp_path / "p", bad), now=NOW)
    locations = {d["location"] for d in caught.value.details}
    assert locations == {"pack.yaml: pack", "pack.yaml: version", "pack.yaml: app", "pack.yaml: requires.jimu"}
    assert "+3 more" in caught.value.message


def test_a_folder_pack_loads_with_relative_dates_resolved(tmp_path):
    pack = load_pack(write_folder(tmp_path / "p"), now=NOW)
    assert isinstance(pack, Pack)
    assert (pack.name, pack.version, pack.format_version, pack.title) == ("demo_pack", "1.0.0", 1, "演示 Demo")
    assert pack.requires == {"jimu": ">=0.1"}
    # `on` stays a string key: YAML 1.1 would have turned it into True
    assert pack.app["rules"][0]["on"] == ["create"]
    assert pack.sample_data == {"customer": [
        {"name": "华东精密机械有限公司", "since": "2026-02-13", "last_seen": "2026-03-13T22:30:00+08:00"},
        {"name": "Bluewave Ltd.", "since": "2025-01-02", "last_seen": ""},
    ]}
    assert pack.sample_files == {"customer": "data/customers.csv"}
    assert load_pack(tmp_path / "p" / "pack.yaml", now=NOW).sample_data == pack.sample_data


def test_bom_absent_format_version_and_plain_yaml_scalars(tmp_path):
    manifest = ("pack: demo_pack\nversion: 1.0.0\ntitle: t\n"
                "app: {app: demo_pack, calendars: [{key: c, extra_holidays: [2026-12-31], hours: [09:00-12:00]}],"
                " options: [no, yes, on]}\nsample_data: {customer: data/customers.csv}\n")
    csv_bytes = b"\xef\xbb\xbf" + GOOD_CSV.encode("utf-8")
    pack = load_pack(write_folder(tmp_path / "p", manifest, {"data/customers.csv": csv_bytes}), now=NOW)
    assert pack.format_version == 1 and pack.description == ""
    assert pack.app["calendars"][0]["extra_holidays"] == ["2026-12-31"]  # a string, JSON-ready
    assert pack.app["options"] == ["no", "yes", "on"]
    assert list(pack.sample_data["customer"][0]) == ["name", "since", "last_seen"]


def test_zip_upload_at_root_or_in_one_top_folder(tmp_path):
    at_root = zip_bytes([("data/customers.csv", GOOD_CSV), ("README.md", "# hi"), ("__MACOSX/._pack.yaml", "x")])
    assert load_pack(at_root, now=NOW).sample_data["customer"][0]["since"] == "2026-02-13"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("demo_pack/", "")
        zf.writestr("demo_pack/pack.yaml", dump_yaml(GOOD_MANIFEST))
        zf.writestr("demo_pack/data/customers.csv", GOOD_CSV)
    (tmp_path / "demo.zip").write_bytes(buf.getvalue())
    pack = load_pack(tmp_path / "demo.zip", now=NOW)
    assert pack.name == "demo_pack" and pack.source.endswith("demo.zip")
    assert len(pack.sample_data["customer"]) == 2


def test_version_control_and_archiver_litter_is_ignored(tmp_path):
    root = write_folder(tmp_path / "p", files={"data/customers.csv": GOOD_CSV, ".git/hooks/pre-commit": "#!/bin/sh",
                                               ".git/config": "x", ".DS_Store": "x", "README.md": "# notes"})
    assert len(load_pack(root, now=NOW).sample_data["customer"]) == 2


def test_symlink_inside_the_folder_is_followed(tmp_path):
    root = write_folder(tmp_path / "p", files={"data/real.csv": GOOD_CSV})
    os.symlink(root / "data" / "real.csv", root / "data" / "customers.csv")
    assert len(load_pack(root, now=NOW).sample_data["customer"]) == 2


@pytest.mark.parametrize("value, expected", [
    ("@today", "2026-03-15"),
    ("@today-30", "2026-02-13"),
    ("@today+7", "2026-03-22"),
    ("@today-1T09:05", "2026-03-14T09:05:00+08:00"),   # a time of that day, in now's zone
    ("@now", "2026-03-15T10:30:00+08:00"),
    ("@now-36h", "2026-03-13T22:30:00+08:00"),
    ("@now-90m", "2026-03-15T09:00:00+08:00"),
    ("@now+2d", "2026-03-17T10:30:00+08:00"),
    ("@today -3", "@today -3"),                          # not exactly the form: left as is
    ("today-3", "today-3"),
    ("@nowhere", "@nowhere"),
    ("", ""),
])
def test_resolve_relative(value, expected):
    assert resolve_relative(value, NOW) == expected


def test_resolve_relative_refuses_what_it_cannot_compute():
    with pytest.raises(ValueError, match="out of range"):
        resolve_relative("@today-999999", NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        resolve_relative("@now-1h", datetime(2026, 1, 1))
    assert resolve_relative("@today-1", datetime(2026, 1, 1)) == "2025-12-31"
    with pytest.raises(ValueError, match="timezone-aware"):
        load_pack(b"", now=datetime(2026, 1, 1))


def test_dump_round_trips_through_folder_and_zip(tmp_path):
    pack = load_pack(write_folder(tmp_path / "p"), now=NOW)
    pack.sample_data["customer"].append({"name": "新客户", "since": "", "last_seen": ""})
    folder = dump_pack(pack, tmp_path / "out")
    archive = dump_pack(pack, tmp_path / "out.zip")
    for target in (folder, archive, archive.read_bytes()):
        again = load_pack(target, now=NOW)
        assert (again.name, again.version, again.title, again.requires, again.app) == \
               (pack.name, pack.version, pack.title, pack.requires, pack.app)
        assert again.sample_data == pack.sample_data
    assert dump_pack(pack, tmp_path / "again.zip").read_bytes() == archive.read_bytes()
    assert zipfile.ZipFile(archive).namelist() == ["demo_pack/pack.yaml", "demo_pack/data/customers.csv"]
    # an earlier export may be overwritten
    assert dump_pack(pack, folder) == folder


def test_dump_writes_lists_and_booleans_and_refuses_bad_packs(tmp_path):
    pack = Pack(name="x_pack", version="2.1.0", format_version=1, title="X", description="d",
                requires={}, app={"app": "x_pack"}, source="memory",
                sample_data={"customer": [{"tags": ["vip", "new"], "active": True, "note": None}], "empty": []})
    out = dump_pack(pack, tmp_path / "x")
    assert (out / "data" / "customer.csv").read_text("utf-8-sig") == "tags,active,note\nvip;new,true,\n"
    assert not (out / "data" / "empty.csv").exists()
    pack.version = "2.1"
    with pytest.raises(DefinitionError, match="MAJOR.MINOR.PATCH"):
        dump_pack(pack, tmp_path / "y")
    pack.version = "2.1.1"
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(Conflict):
        dump_pack(pack, tmp_path / "busy")


def test_list_builtin_packs():
    names = [p.name for p in list_builtin_packs()]
    assert names == sorted(["after_sales_service", "complaint_handling", "customer_360", "lead_routing",
                            "sales_pipeline"])
    assert all((p / "pack.yaml").is_file() for p in list_builtin_packs())
