"""/api/v1/openapi.json: the API described from the published metadata, one schema per entity."""
from __future__ import annotations

import re

from flask import jsonify

from builder import store
from engines.field_types import REGISTRY

from ..app import services
from ..auth import tx
from . import bp

ERROR = {"$ref": "#/components/schemas/Error"}
INTEGER_PARAMS = ("id", "n", "share_id")


def with_path_parameters(paths: dict) -> dict:
    """Declare every ``{name}`` of a path as a required path parameter (OpenAPI demands it)."""
    for path, item in paths.items():
        names = re.findall(r"{(\w+)}", path)
        if names:
            item["parameters"] = [{"name": n, "in": "path", "required": True,
                                   "schema": {"type": "integer" if n in INTEGER_PARAMS else "string"}}
                                  for n in names]
    return paths


def entity_schema(entity) -> dict:
    props = {"id": {"type": "integer", "readOnly": True}}
    for f in entity.fields:
        schema = dict(REGISTRY[f.type].json_schema(f))
        schema["title"] = f.label
        if f.help:
            schema["description"] = f.help
        props[f.key] = schema
    for key in ("created_at", "updated_at"):
        props[key] = {"type": "string", "format": "date-time", "readOnly": True}
    for key in ("created_by", "updated_by", "owner", "_version"):
        props[key] = {"type": ["integer", "null"], "readOnly": key != "owner"}
    required = [f.key for f in entity.fields if f.required]
    return {"type": "object", "title": entity.label, "properties": props, "required": required}


@bp.get("/openapi.json")
def openapi():
    paths: dict = {
        "/apps": {"get": {"summary": "List apps"}, "post": {"summary": "Create an app from metadata"}},
        "/apps/{app}/draft": {"get": {"summary": "Read the draft"}, "put": {"summary": "Replace the draft"}},
        "/apps/{app}/publish": {"post": {"summary": "Publish the draft"}},
        "/apps/{app}/revisions": {"get": {"summary": "Revision history"}},
        "/apps/{app}/revisions/{n}/diff": {"get": {"summary": "Diff of a revision"}},
        "/apps/{app}/revisions/{n}/restore": {"post": {"summary": "Publish revision n again"}},
        "/users": {"get": {"summary": "List users"}, "post": {"summary": "Create a user"}},
        "/teams": {"get": {"summary": "List teams"}, "post": {"summary": "Create a team"}},
        "/tokens": {"get": {"summary": "My API tokens"}, "post": {"summary": "Create an API token"}},
        "/audit": {"get": {"summary": "The audit log (JSON, or CSV with format=csv)"}},
        "/apps/{app}/{entity}/{id}/shares": {"get": {"summary": "Shares of a record"},
                                             "post": {"summary": "Share a record with a user or team"}},
        "/apps/{app}/{entity}/{id}/shares/{share_id}": {"delete": {"summary": "Stop sharing a record"}},
        "/apps/{app}/{entity}/import": {"post": {"summary": "Bulk import a CSV/XLSX file (multipart field file)"}},
    }
    schemas: dict = {"Error": {"type": "object", "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}}}
    with tx() as ctx:
        for summary in store.list_apps(ctx.conn):
            if summary["published_revision"] < 1:
                continue
            capp = services().catalog.get(ctx.conn, summary["app"])
            for entity in capp.app.entities:
                name = f"{capp.key}.{entity.key}"
                schemas[name] = entity_schema(entity)
                ref = {"$ref": f"#/components/schemas/{name}"}
                one_or_many = {"oneOf": [ref, {"type": "array", "items": ref}]}
                base = f"/apps/{capp.key}/{entity.key}"
                paths[base] = {
                    "get": {"summary": f"List {entity.label}", "parameters": [
                        {"name": n, "in": "query", "schema": {"type": "string"}}
                        for n in ("filter", "sort", "page", "page_size", "fields", "cursor", "format")],
                        "responses": {"200": {"description": "a page of records"}, "4XX": {"content": {
                            "application/json": {"schema": ERROR}}}}},
                    "post": {"summary": f"Create {entity.label}", "requestBody": {"content": {
                        "application/json": {"schema": one_or_many}}},
                        "responses": {"201": {"description": "created (a list for a list)", "content": {
                            "application/json": {"schema": one_or_many}}}}}}
                paths[base + "/{id}"] = {
                    "get": {"summary": f"Read {entity.label}", "responses": {"200": {"content": {
                        "application/json": {"schema": ref}}, "description": "the record"}}},
                    "patch": {"summary": f"Update {entity.label}", "parameters": [
                        {"name": "If-Match", "in": "header", "schema": {"type": "string"}}]},
                    "delete": {"summary": f"Delete {entity.label}"}}
    return jsonify({"openapi": "3.1.0", "info": {"title": "Jimu API", "version": "1"},
                    "servers": [{"url": "/api/v1"}], "paths": with_path_parameters(paths),
                    "components": {"schemas": schemas, "securitySchemes": {
                        "bearer": {"type": "http", "scheme": "bearer"}}},
                    "security": [{"bearer": []}]})
