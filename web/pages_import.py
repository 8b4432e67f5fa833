"""The data import page, ``/apps/{app}/{entity}/import``: a server-rendered front of the import
service (``runtime.importer``), the same one ``POST /api/v1/apps/{app}/{entity}/import`` and
``jimu import`` use.

Step 1 (GET, then POST ``step=upload``): a CSV or XLSX file (multipart, the REST size limit), the
dedupe field, what to do with a duplicate and the mode. Step 2 (POST ``step=map``): every column
of the file with a field to import it into (the suggested one preselected; only fields this user
may write), the first rows as a preview, and "Dry run" / "Import". The result: counts, rows
processed and the per-row error table; after a dry run or a refused import the mapping form stays
on the page for another try.

Between the steps the file is kept by ``runtime.import_uploads``: in the database (web processes
are stateless and may run on several machines), under a random id made by the server. The page
carries only that id; it is never a path, any other shape is refused before a lookup, and it finds
the file only for the user, app and entity that uploaded it. Files expire after an hour, and an
import that wrote its rows deletes its file in the same transaction, so posting the page again
cannot import a file twice. Re-posting the file itself was not chosen: a browser cannot fill a
file input, so the user would have to pick the file twice.

Who may use the page is the records service's rule (create permission; update too for dedupe
updates); this module parses the form, calls the services and renders ``import.html``.
"""
from __future__ import annotations

from itertools import chain, islice
from typing import Any

from flask import Blueprint, render_template, request

from engines.errors import BadRequest, JimuError
from runtime import import_files, import_uploads, importer
from runtime.import_mapping import suggest_mapping, writable_fields
from runtime.permissions import require

from .app import services
from .auth import tx
from .i18n import gettext as _
from .page_fields import state_field
from .pages import error_page
from .pages_runtime import app_nav, load_app

bp = Blueprint("imports", __name__)

PREVIEW_ROWS = 5
SHOWN_ERRORS = 1000
CELL_CHARS = 200
MB = 1024 * 1024


@bp.url_value_preprocessor
def _room_for_the_file(_endpoint, _values) -> None:
    # runs before the sign-in and CSRF checks read the form: the upload may be as large as over REST
    if request.method == "POST":
        request.max_content_length = import_files.MAX_BYTES + MB


@bp.errorhandler(413)
def _request_too_large(_exc):
    return error_page(import_files.too_large())


def _target(ctx, app_key: str, entity_key: str) -> dict:
    """What every step shows: the entity, the fields this user may import into, the dedupe choices."""
    capp = load_app(ctx, app_key)
    entity = capp.entity(entity_key)
    access = services().records.access(ctx, capp, entity_key)
    require(access, "create", entity.label)
    fields = writable_fields(entity, access, state_field(capp, entity_key))
    return {"entity": entity, "fields": fields, "dedupe_fields": [f for f in fields if f.unique],
            "labels": {f.key: (_("Owner") if f.key == "owner" else f.label) for f in fields},
            "limit_mb": import_files.MAX_BYTES // MB, "limit_rows": f"{import_files.MAX_ROWS:,}",
            **app_nav(capp)}


def _options(form) -> importer.ImportOptions:
    return importer.ImportOptions(dedupe=form.get("dedupe") or None, on_duplicate=form.get("on_duplicate") or "skip",
                                  mode=form.get("mode") or "all_or_nothing")


def _chosen(options: importer.ImportOptions) -> dict:
    return {"dedupe": options.dedupe or "", "on_duplicate": options.on_duplicate, "mode": options.mode}


def _details(exc: JimuError) -> list[str]:
    """A refusal's details as lines for the page (field or column, then the message)."""
    if not isinstance(exc.details, dict):
        return []
    out = []
    for key, messages in exc.details.items():
        if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
            where = str(key).removeprefix("mapping.")
            out += [f"{where}: {m}" for m in messages]
    return out[:50]


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + "…"


def _preview(kept: import_uploads.KeptFile) -> tuple[list, import_files.Sheet]:
    """The first rows for the page, and a sheet that still yields every row for the import."""
    sheet = kept.sheet
    first = list(islice(sheet.rows, PREVIEW_ROWS))
    rows = [{"line": line, "cells": [_cell(c) for c in cells[:len(sheet.columns)]]
             + [""] * (len(sheet.columns) - len(cells))} for line, cells in first]
    return rows, import_files.Sheet(sheet.columns, chain(first, sheet.rows), sheet.kind, sheet.encoding)


def _mapping_from(form, columns: list[str]) -> dict[int, str]:
    return {i: form.get(f"map-{i}", "") for i, c in enumerate(columns) if c and form.get(f"map-{i}", "")}


def _render(stage: str, view: dict, status: int = 200, **more):
    return render_template("import.html", stage=stage, **view, **more), status


def _upload_form(view: dict, options: importer.ImportOptions | None = None, *, error: str | None = None,
                 details: list[str] | None = None, status: int = 200):
    return _render("upload", view, status, chosen=_chosen(options or importer.ImportOptions()), error=error,
                   details=details or [])


@bp.route("/apps/<app_key>/<entity_key>/import", methods=["GET", "POST"])
def import_page(app_key, entity_key):
    with tx() as ctx:
        view = _target(ctx, app_key, entity_key)
    if request.method == "GET":
        return _upload_form(view)
    step = request.form.get("step")
    if step == "upload":
        return _upload(app_key, entity_key, view)
    if step == "map":
        return _run(app_key, entity_key, view)
    raise BadRequest(_("This form cannot be read; open the import page again."), {"step": ["invalid"]})


def _upload(app_key: str, entity_key: str, view: dict):
    options = _options(request.form)
    upload = request.files.get("file")
    data = b""
    if upload is not None:
        try:
            data = upload.stream.read(import_files.MAX_BYTES + 1)
        finally:
            upload.close()   # a large upload is spooled to a temporary file
    if upload is None or (not upload.filename and not data):
        return _upload_form(view, options, error=_("Choose a CSV or XLSX file."), status=422)
    if len(data) > import_files.MAX_BYTES:
        return _upload_form(view, options, error=import_files.too_large().message, status=413)
    try:
        with tx() as ctx:
            importer.check_options(options, view["entity"])
            kept = import_uploads.keep(services().records, ctx, app_key, entity_key, data, upload.filename)
            preview = _preview(kept)[0]
            kept.sheet.rows.close()   # the rows are read again, from the kept file, in step 2
    except JimuError as exc:
        return _upload_form(view, options, error=exc.message, details=_details(exc), status=exc.status)
    allowed = {f.key for f in view["fields"]}
    suggested = suggest_mapping(view["entity"], kept.sheet.columns)
    mapping = {i: suggested[c] for i, c in enumerate(kept.sheet.columns) if suggested.get(c) in allowed}
    return _render("map", view, kept=kept, preview=preview, mapping=mapping, chosen=_chosen(options),
                   error=None, details=[], report=None)


def _run(app_key: str, entity_key: str, view: dict):
    form = request.form
    action = form.get("action")
    if action not in ("dry_run", "import"):
        raise BadRequest(_("This form cannot be read; open the import page again."), {"action": ["invalid"]})
    options = _options(form)
    options.dry_run = action == "dry_run"
    kept = preview = None
    mapping: dict[int, str] = {}
    report, error, details, status = None, None, [], 200
    try:
        with tx() as ctx:
            kept = import_uploads.load(services().records, ctx, app_key, entity_key, form.get("upload"))
            preview, sheet = _preview(kept)
            mapping = _mapping_from(form, sheet.columns)
            options.mapping = {c: mapping.get(i) for i, c in enumerate(sheet.columns) if c}
            report = importer.run_import(services().records, ctx, app_key, entity_key, sheet, options)
            if not options.dry_run:
                import_uploads.discard(ctx, kept.id)
    except importer.ImportRefused as exc:
        report, error, status = exc.details, exc.message, exc.status
    except JimuError as exc:
        if preview is None:   # the kept file is gone or was never this user's: start again
            return _upload_form(view, options, error=exc.message, details=_details(exc), status=exc.status)
        error, details, status = exc.message, _details(exc), exc.status
    finally:
        if kept is not None:
            kept.sheet.rows.close()   # an XLSX workbook stays open until its rows are read or closed
    errors = report["errors"] if report else []
    return _render("done" if report and report.get("imported") else "map", view, status, kept=kept,
                   preview=preview, mapping=mapping, chosen=_chosen(options), error=error, details=details,
                   report=report, shown_errors=errors[:SHOWN_ERRORS])
