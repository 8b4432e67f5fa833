"""The README documents what ships: every CLI command, field type, expression function and REST route."""
from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def norm(path: str) -> str:
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def test_every_field_type_is_documented():
    from engines.field_types import REGISTRY
    missing = [name for name in REGISTRY if not re.search(rf"\b{name}\b", README)]
    assert not missing


def test_every_expression_function_is_documented():
    from engines.expressions import FUNCTIONS
    missing = [name for name in FUNCTIONS if f"`{name}`" not in README]
    assert not missing


def test_every_cli_command_is_documented():
    from web.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = []
    for name, p in sub.choices.items():
        nested = [a for a in p._actions if a.__class__.__name__ == "_SubParsersAction"]
        names = [f"{name} {n}" for n in nested[0].choices] if nested else [name]
        missing += [n for n in names if f"jimu {n}" not in README]
    assert not missing


def test_every_rest_route_is_documented(flask_app):
    documented = {norm(m) for m in re.findall(r"`(?:GET|POST|PUT|PATCH|DELETE)(?:/[A-Z]+)* (/[^` ?]*)", README)}
    missing = sorted({norm(r.rule[len("/api/v1"):]) for r in flask_app.url_map.iter_rules()
                      if r.rule.startswith("/api/v1/")} - documented)
    assert not missing, missing
