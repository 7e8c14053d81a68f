"""Dependencies point one way: library code never imports the local dev stack (``eventlake.services``).

Only the CLI (which wires the stack for a developer) may; everything else gets endpoints passed in.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "eventlake"
MAY_IMPORT_STACK = {PACKAGE / "cli.py"}


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_library_code_does_not_import_the_local_stack() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(m for m in _imports(path) if m.startswith("eventlake.services"))
        for path in PACKAGE.rglob("*.py")
        if (PACKAGE / "services") not in path.parents and path not in MAY_IMPORT_STACK
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_endpoints_are_one_type() -> None:
    """Where components answer is ``eventlake.endpoints.Endpoints`` everywhere: no module keeps a copy
    of its own with other field names (the one-pass query once had ``bootstrap`` for ``kafka_bootstrap``)."""
    defined = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and node.name == "Endpoints"
    )
    assert defined == ["endpoints.py"]
