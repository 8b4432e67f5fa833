"""Reading a template pack into a neutral ``Pack``, and writing one back.

Owns the pack envelope: ``pack.yaml`` parsed with the safe YAML dialect of
``templates_library.safe_yaml`` and checked against ``schemas/pack.schema.json``; the sample data
read from UTF-8 CSV files with their relative dates (``@today-30``, ``@now-36h``) resolved; and the
way back (``dump_pack``) for export. File-level safety and limits live in
``templates_library.pack_files``.

It never touches a database and does not judge the app metadata under ``app:`` (the builder
does), nor whether the CSV columns fit the entities (the importer does).
"""
from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from engines.errors import Conflict, DefinitionError
from templates_library.pack_files import (
    MANIFEST,
    MAX_CSV_BYTES,
    MAX_MANIFEST_BYTES,
    PackFileError,
    PackFiles,
    check_relative_path,
    open_pack_files,
)
from templates_library.safe_yaml import PackYamlError, dump_yaml, load_yaml

SUPPORTED_FORMAT_VERSIONS = (1,)
MAX_SAMPLE_ROWS = 100_000
BUILTIN_PACKS_DIR = Path(__file__).resolve().parent / "packs"
MULTI_VALUE_SEPARATOR = ";"

_RELATIVE = re.compile(
    r"^@(?:today(?P<days>[+-]\d{1,6})?(?:T(?P<hh>\d{2}):(?P<mm>\d{2}))?"
    r"|now(?:(?P<amount>[+-]\d{1,6})(?P<unit>[dhm]))?)$")
_LOOKS_RELATIVE = re.compile(r"^@(?:today|now)(?:[-+T].*)?$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
_EXTRA_CELLS = object()


@dataclass
class Pack:
    name: str
    version: str
    format_version: int
    title: str
    description: str
    requires: dict[str, str]
    app: dict[str, Any]
    sample_data: dict[str, list[dict[str, str]]]
    source: str
    # entity key -> the CSV path it came from (kept so that an export can keep the file names)
    sample_files: dict[str, str] = field(default_factory=dict)


def resolve_relative(value: str, now: datetime) -> str:
    """``@today``, ``@today-30``, ``@today+7``, ``@today-3T09:30`` (a time of that day), ``@now``,
    ``@now-36h``, ``@now-90m``, ``@now+2d`` as ISO text relative to ``now``; anything else as is.

    Dates are ``now``'s calendar date plus the days; datetimes carry ``now``'s offset, which must
    then be known (an aware ``now``). Raises ``ValueError`` for a date out of range."""
    m = _RELATIVE.match(value)
    if m is None:
        return value
    try:
        if value.startswith("@today"):
            day = now.date() + timedelta(days=int(m["days"] or 0))
            if m["hh"] is None:
                return day.isoformat()
            _need_aware(now, value)
            at = time(int(m["hh"]), int(m["mm"]))
            return datetime.combine(day, at, tzinfo=now.tzinfo).isoformat(timespec="seconds")
        _need_aware(now, value)
        delta = timedelta(**{_UNITS[m["unit"]]: int(m["amount"])}) if m["amount"] else timedelta()
        return (now + delta).isoformat(timespec="seconds")
    except OverflowError:
        raise ValueError(f"relative date out of range: {value!r}") from None


def _need_aware(now: datetime, value: str) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"{value!r} needs a timezone-aware 'now'")


def load_pack(path: str | Path | bytes, now: datetime | None = None) -> Pack:
    """Read a pack from a folder (or its pack.yaml), a .zip file, or zip bytes (an upload).

    Relative dates in the sample data resolve against ``now`` (aware; pass it in the app's time
    zone, the default is the machine's local time). Raises ``DefinitionError`` whose details list ``{"location", "message"}`` for a bad pack."""
    if now is None:
        now = datetime.now().astimezone()
    elif now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("load_pack needs a timezone-aware 'now'")
    try:
        with open_pack_files(path) as files:
            doc = _read_manifest(files)
            sample_files = dict(doc.get("sample_data") or {})
            sample_data = {entity: _read_sample(files, entity, rel, now)
                           for entity, rel in sample_files.items()}
            source = files.source
    except PackFileError as exc:
        raise _pack_error([{"location": exc.location, "message": exc.message}]) from exc
    return Pack(name=doc["pack"], version=doc["version"],
                format_version=doc.get("format_version", 1), title=doc["title"],
                description=doc.get("description", ""), requires=dict(doc.get("requires") or {}),
                app=doc["app"], sample_data=sample_data, source=source, sample_files=sample_files)


def manifest_errors(doc: Any) -> list[dict[str, str]]:
    """Every problem of a pack.yaml document as ``{"location", "message"}`` (empty when fine)."""
    if not isinstance(doc, dict):
        return [{"location": MANIFEST, "message": "pack.yaml must be a mapping (pack, version, title, "
                                                  "app, …) / pack.yaml 必须是映射"}]
    if "format_version" in doc:
        fv = doc["format_version"]
        if type(fv) is not int or fv not in SUPPORTED_FORMAT_VERSIONS:
            supported = ", ".join(map(str, SUPPORTED_FORMAT_VERSIONS))
            # the rest of the document may mean something else in another format: stop here
            return [{"location": f"{MANIFEST}: format_version",
                     "message": f"unsupported format_version {fv!r}; supported: {supported} / "
                                f"不支持的格式版本 {fv!r}，支持的版本：{supported}"}]
    validator = jsonschema.Draft202012Validator(_schema())
    details = [{"location": _where(e.absolute_path), "message": _describe(e)}
               for e in sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])]
    sample = doc.get("sample_data")
    if isinstance(sample, dict):
        for entity, rel in sample.items():
            if isinstance(rel, str):
                try:
                    _check_sample_path(rel, f"{MANIFEST}: sample_data.{entity}")
                except PackFileError as exc:
                    details.append({"location": exc.location, "message": exc.message})
    return details


def _schema() -> dict:
    text = resources.files("templates_library.schemas").joinpath("pack.schema.json").read_text("utf-8")
    return json.loads(text)


_HINTS = {
    ("pack",): "pack name must be 2-40 lower-case letters, digits or '_', starting with a letter "
               "(e.g. complaint_handling) / 模板包名称须为 2–40 位小写字母、数字或下划线，以字母开头",
    ("version",): "version must be MAJOR.MINOR.PATCH, e.g. 1.0.0 / 版本号须为 主.次.修订，例如 1.0.0",
    ("requires", "jimu"): "requires.jimu must be a version spec such as \">=0.1\" / "
                          "requires.jimu 须为版本要求，例如 \">=0.1\"",
    ("app",): "app must be an object: the app metadata (app, entities, forms, rules, …) / "
              "app 必须是对象（应用元数据）",
    ("title",): "title must be a non-empty text of at most 200 characters / 标题须为 1–200 字的文本",
    ("sample_data",): "sample_data must map entity keys to CSV paths under data/ / "
                      "sample_data 须为 实体键 → data/ 下的 CSV 路径",
}


def _describe(error: jsonschema.ValidationError) -> str:
    path = tuple(str(p) for p in error.absolute_path)
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return f"missing required key {missing[0]!r} / 缺少必填项 {missing[0]!r}"
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unknown key(s): {', '.join(map(repr, unknown))} / 未知的键"
    hint = (_HINTS.get(path) or _HINTS.get(path[:1])) if path else None
    if hint:
        shown = repr(error.instance)
        return f"{hint} (got {shown[:60] + '…' if len(shown) > 60 else shown})"
    return f"{error.message} / 取值不符合要求"


def _where(path) -> str:
    parts = [str(p) for p in path]
    return f"{MANIFEST}: {'.'.join(parts)}" if parts else MANIFEST


def _check_sample_path(rel: str, location: str) -> None:
    parts = check_relative_path(rel, location).parts
    if len(parts) < 2 or parts[0] != "data" or not rel.lower().endswith(".csv"):
        raise PackFileError(location, f"sample data must be a .csv file under data/: {rel!r} / "
                                      f"样例数据须为 data/ 下的 .csv 文件")


def _pack_error(details: list[dict[str, str]]) -> DefinitionError:
    first = details[0]
    more = f" (+{len(details) - 1} more / 另有 {len(details) - 1} 处)" if len(details) > 1 else ""
    return DefinitionError(f"Invalid pack / 模板包无效: {first['location']}: {first['message']}{more}",
                           details)


def _read_manifest(files: PackFiles) -> dict:
    if MANIFEST not in files.names():
        raise PackFileError(files.source, "no pack.yaml at the top of the pack / 模板包顶层缺少 pack.yaml")
    text = _decode(files.read(MANIFEST, MAX_MANIFEST_BYTES), MANIFEST)
    try:
        doc = load_yaml(text)
    except PackYamlError as exc:
        where = f"{MANIFEST} line {exc.line}" if exc.line else MANIFEST
        raise PackFileError(where, exc.message) from exc
    errors = manifest_errors(doc)
    if errors:
        raise _pack_error(errors)
    return doc


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = data[exc.start]
        line = data[:exc.start].count(b"\n") + 1
        raise PackFileError(f"{name} line {line}",
                            f"not UTF-8 text (byte 0x{bad:02x}); save the file as UTF-8 "
                            f"(e.g. not GBK) / 文件不是 UTF-8 编码（例如 GBK），请另存为 UTF-8") from None


def _read_sample(files: PackFiles, entity: str, rel: str, now: datetime) -> list[dict[str, str]]:
    if rel not in files.names():
        raise PackFileError(f"{MANIFEST}: sample_data.{entity}",
                            f"{rel} is not in the pack / 模板包中没有文件 {rel}")
    text = _decode(files.read(rel, MAX_CSV_BYTES), rel)
    if "\x00" in text:
        # no database text column takes it (PostgreSQL refuses it outright)
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise PackFileError(f"{rel} line {line}", "NUL character in the CSV / CSV 中含有 NUL 字符")
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey=_EXTRA_CELLS, restval="")
    try:
        header = reader.fieldnames
        if not header or all(not (h or "").strip() for h in header):
            raise PackFileError(rel, "empty CSV header: the first line must name the columns "
                                     "(field keys) / CSV 表头为空：第一行须为列名（字段键）")
        names = [h.strip() for h in header]
        if "" in names:
            raise PackFileError(f"{rel} line 1", f"blank column name (column {names.index('') + 1}) / "
                                                 f"表头有空列名")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise PackFileError(f"{rel} line 1", f"duplicate column(s): {', '.join(dupes)} / 表头列名重复")
        reader.fieldnames = names
        rows: list[dict[str, str]] = []
        for row in reader:
            where = f"{rel} line {reader.line_num}"
            if _EXTRA_CELLS in row:
                raise PackFileError(where, "more cells than the header has columns / 单元格数多于表头列数")
            if not any(row.values()):
                continue
            if len(rows) >= MAX_SAMPLE_ROWS:
                raise PackFileError(rel, f"more than {MAX_SAMPLE_ROWS:,} rows / 行数超过 {MAX_SAMPLE_ROWS:,}")
            rows.append({k: _cell(v, now, where, k) for k, v in row.items()})
    except csv.Error as exc:
        raise PackFileError(f"{rel} line {reader.line_num}", f"malformed CSV: {exc} / CSV 格式错误") from exc
    return rows


def _cell(value: str, now: datetime, where: str, column: str) -> str:
    if not value.startswith("@"):
        return value
    if _RELATIVE.match(value) is None:
        if _LOOKS_RELATIVE.match(value):
            raise PackFileError(f"{where}, column {column}",
                                f"unknown relative date {value!r} (use @today, @today-30, @today+7, "
                                f"@today-3T09:30, @now, @now-36h, @now-90m) / 无法识别的相对日期")
        return value
    try:
        return resolve_relative(value, now)
    except ValueError as exc:
        raise PackFileError(f"{where}, column {column}", f"{exc} / 相对日期超出范围") from None


def dump_pack(pack: Pack, out_path: str | Path) -> Path:
    """Write ``pack`` as a folder, or as a .zip (one top folder named after the pack) when
    ``out_path`` ends with ``.zip``. The same pack always gives the same bytes."""
    sample_files = {entity: pack.sample_files.get(entity) or f"data/{entity}.csv"
                    for entity, rows in pack.sample_data.items() if rows}
    manifest: dict[str, Any] = {"pack": pack.name, "format_version": pack.format_version,
                                "version": pack.version, "title": pack.title}
    if pack.description:
        manifest["description"] = pack.description
    if pack.requires:
        manifest["requires"] = dict(pack.requires)
    manifest["app"] = pack.app
    if sample_files:
        manifest["sample_data"] = sample_files
    errors = manifest_errors(manifest)
    if errors:
        raise _pack_error(errors)
    contents = {MANIFEST: dump_yaml(manifest).encode("utf-8")}
    for entity, rel in sample_files.items():
        contents[rel] = _csv_bytes(pack.sample_data[entity])
    out = Path(out_path)
    if out.suffix.lower() == ".zip":
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for rel, data in contents.items():
                info = zipfile.ZipInfo(f"{pack.name}/{rel}", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
        return out
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise Conflict(f"refusing to write a pack into a non-empty folder that holds no pack: {out} / "
                       f"目标文件夹非空且不是模板包")
    for rel, data in contents.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return out


def _csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _to_text(v) for k, v in row.items()})
    # with a BOM, so that spreadsheet programs open the 中文 right; the loader accepts both
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return MULTI_VALUE_SEPARATOR.join(_to_text(v) for v in value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def list_builtin_packs() -> list[Path]:
    """The folders of the packs shipped in ``templates_library/packs``, sorted by name."""
    return sorted(p.parent for p in BUILTIN_PACKS_DIR.glob(f"*/{MANIFEST}"))
