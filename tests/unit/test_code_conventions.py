"""Conventions a reader relies on: every module says what it exports (`__all__`), and
no test reaches for a private name (a leading underscore) of the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def declares_all(tree: ast.Module) -> bool:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return True
    return False


def test_every_module_declares_its_public_names() -> None:
    missing = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "platform" / "mlpatterns").rglob("*.py"))
        if path.name != "__main__.py" and not declares_all(ast.parse(path.read_text()))
    ]
    assert missing == []


def test_no_test_imports_a_private_name() -> None:
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlpatterns"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                private = [name for name in private if not name.startswith("__")]
                if private:
                    found.append(f"{path.relative_to(ROOT)}: {node.module} {private}")
    assert found == []
