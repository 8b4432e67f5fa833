"""The floors of ARCHITECTURE.md: imports point down only, Flask stays in web/."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {
    "engines": set(),
    "builder": {"engines"},
    "runtime": {"builder", "engines"},
    "templates_library": {"runtime", "builder", "engines"},
    "web": {"runtime", "builder", "templates_library", "engines"},
}
OURS = set(ALLOWED)


def imports_of(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down(package):
    bad = []
    for path in (ROOT / package).rglob("*.py"):
        for name in imports_of(path):
            if name in OURS and name != package and name not in ALLOWED[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
            if name == "flask" and package != "web":
                bad.append(f"{path.relative_to(ROOT)} imports flask")
    assert not bad, "\n".join(bad)
