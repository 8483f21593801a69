"""The bench scripts import the app's modules inside functions (so `--help` stays fast): those
imports are checked here, or a module move breaks a bench nobody runs in CI (bench/loop.py
imported the old `annotations.services.loop` for a whole stop)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
PACKAGES = ("annotations", "modeling", "ddi_site")


def _project_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name or None) of every import of the project's packages in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in PACKAGES:
                found += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, alias.name, None)
                for alias in node.names
                if alias.name.split(".")[0] in PACKAGES
            ]
    return found


@pytest.mark.parametrize("script", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_every_project_import_of_a_bench_script_resolves(script):
    missing = []
    for line, module, name in _project_imports(script):
        try:
            imported = importlib.import_module(module)
        except ImportError as error:
            missing.append(f"{script.name}:{line}: {module} ({error})")
            continue
        if name is not None and not hasattr(imported, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{script.name}:{line}: {module} has no {name}")
    assert not missing, "\n".join(missing)
