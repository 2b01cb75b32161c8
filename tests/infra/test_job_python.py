"""The processing job runs ``lambdas/preprocess`` and ``datasets`` on the SageMaker XGBoost
image's Python (3.10), older than the 3.11+ the rest of the project uses: nothing shipped to it
may need a newer grammar or a name that 3.10 lacks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from infra.large_objects import IMAGE_PYTHON

ROOT = Path(__file__).resolve().parent.parent.parent
SHIPPED = ["lambdas/__init__.py", "datasets", "lambdas/preprocess"]  # the job asset's sources
#: (module, name) pairs added after 3.10 that code here could plausibly reach for
NEWER_NAMES = {
    ("datetime", "UTC"),
    ("typing", "Self"),
    ("typing", "LiteralString"),
    ("typing", "Never"),
    ("typing", "assert_never"),
    ("typing", "reveal_type"),
    ("typing", "override"),
    ("enum", "StrEnum"),
    ("tomllib", None),
    ("builtins", "ExceptionGroup"),
}


def _files() -> list[Path]:
    out: list[Path] = []
    for source in SHIPPED:
        path = ROOT / source
        out.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return out


def _newer_names(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if (node.module, alias.name) in NEWER_NAMES:
                    found.append(f"from {node.module} import {alias.name}")
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if (a.name, None) in NEWER_NAMES]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in NEWER_NAMES:
                found.append(f"{node.value.id}.{node.attr}")
        elif isinstance(node, ast.Name) and ("builtins", node.id) in NEWER_NAMES:
            found.append(node.id)
    return found


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_code_parses_and_runs_on_the_image_python(path: Path) -> None:
    major, minor = (int(x) for x in IMAGE_PYTHON.split("."))
    tree = ast.parse(path.read_text(), filename=str(path), feature_version=(major, minor))
    assert _newer_names(tree) == [], f"{path.relative_to(ROOT)} needs Python > {IMAGE_PYTHON}"


def test_the_check_catches_what_it_looks_for() -> None:
    code = "import datetime\nfrom typing import Self\nx = datetime.UTC\n"
    assert _newer_names(ast.parse(code)) == ["from typing import Self", "datetime.UTC"]
    with pytest.raises(SyntaxError):
        ast.parse("match x:\n    case 1: pass\ntype X = int\n", feature_version=(3, 10))
