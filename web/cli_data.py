"""``jimu import``: bulk import of a CSV/XLSX file from the command line, with progress on stderr
and a per-row error report. The import itself is ``runtime.importer``'s; ``web.cli`` picks this
module up through ``add_data_commands``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path


def add_data_commands(sub) -> None:
    s = sub.add_parser("import", help="bulk import a CSV or XLSX file into an entity")
    s.add_argument("app")
    s.add_argument("entity")
    s.add_argument("file")
    s.add_argument("--map", nargs="+", action="extend", default=[], metavar="COLUMN=FIELD",
                   help="map a column to a field (repeatable); without it, columns are matched to field labels and keys")
    s.add_argument("--dry-run", action="store_true", help="check everything and report, write nothing")
    s.add_argument("--dedupe", metavar="FIELD", help="a unique field that identifies existing records")
    s.add_argument("--on-duplicate", choices=["update", "skip"], default="skip")
    s.add_argument("--mode", choices=["all_or_nothing", "skip_bad_rows"], default="all_or_nothing")
    s.add_argument("--user", help="import as this user (their permissions apply); default: the system")
    s.add_argument("--batch", type=int, default=1000, help="rows per batch (1–5000)")
    s.add_argument("--db")
    s.set_defaults(func=cmd_import)


def _mapping(pairs: list[str]) -> dict[str, str] | None:
    from .cli import UserError

    if not pairs:
        return None
    out: dict[str, str] = {}
    for pair in pairs:
        col, sep, field = pair.partition("=")
        if not sep or not col.strip():
            raise UserError(f"--map takes COLUMN=FIELD, not {pair!r}")
        out[col.strip()] = field.strip()
    return out


def cmd_import(args) -> int:
    from runtime import import_files, importer, users
    from runtime.context import SYSTEM, Context

    from .cli import UserError, _services

    path = Path(args.file)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UserError(f"cannot read {args.file}: {exc.strerror}") from exc
    if size > import_files.MAX_BYTES:
        raise import_files.too_large(size)
    data = path.read_bytes()
    sheet = import_files.open_sheet(data, path.name)
    opts = importer.ImportOptions(mapping=_mapping(args.map), dedupe=args.dedupe, on_duplicate=args.on_duplicate,
                                  mode=args.mode, dry_run=args.dry_run, batch=args.batch)
    svc = _services(args)
    last: list[float] = []

    def progress(done: int) -> None:   # at most once a second, the first batch always
        if not last or time.monotonic() - last[0] >= 1.0:
            last[:] = [time.monotonic()]
            print(f"… {done} rows / 行", file=sys.stderr, flush=True)

    report = None
    try:
        with svc.engine.begin() as conn:
            actor = SYSTEM
            if args.user:
                row = users.find_user(conn, args.user)
                actor = users.load_actor(conn, row.id) if row is not None else None
                if actor is None:
                    raise UserError(f"no active user named {args.user!r}")
            report = importer.run_import(svc.records, Context(conn, actor), args.app, args.entity, sheet, opts,
                                         progress=progress)
    except importer.ImportRefused as exc:
        _print_report(exc.details, sys.stderr)
        print(f"jimu: {exc.message}", file=sys.stderr)
        return 1
    finally:
        svc.engine.dispose()
    _print_report(report, sys.stdout)
    return 0


def _print_report(report: dict, out) -> None:
    what = "would be " if report.get("dry_run") else ""
    print(f"{report['rows']} rows: {report['created']} {what}created, {report['updated']} {what}updated, "
          f"{report['skipped']} skipped, {report['error_rows']} with errors", file=out)
    if report.get("ignored_columns"):
        print(f"ignored columns: {', '.join(report['ignored_columns'])}", file=out)
    for e in report["errors"][:200]:
        print(f"  line {e['line']}: {e.get('field') or '-'}: {e['message']}", file=out)
    if len(report["errors"]) > 200:
        print(f"  … and {len(report['errors']) - 200} more", file=out)
