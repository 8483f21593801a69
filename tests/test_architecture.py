"""The house rules that imports can check (ARCHITECTURE.md), with import-linter's contracts in
pyproject.toml: no import circle in annotations/ or modeling/, the layers, modeling pure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def test_the_import_contracts_in_pyproject_are_kept():
    done = subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout, done.stdout


def test_the_cycle_contract_would_catch_a_circle(tmp_path):
    package = tmp_path / "house"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "runs.py").write_text("from house import tasks\n")
    (package / "tasks.py").write_text("def go():\n    from house import runs\n")
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_package = house\n\n[importlinter:contract:no-cycles]\n"
        "name = no cycles\ntype = acyclic_siblings\nancestors = house\n"
    )
    done = subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "BROKEN" in done.stdout


def test_every_task_name_dispatch_publishes_is_a_registered_task():
    import annotations.tasks  # noqa: F401  (registers the tasks)
    from annotations.services.jobs.dispatch import CHUNK_TASK, RUN_TASKS
    from ddi_site.celery import app

    for name in [*RUN_TASKS.values(), CHUNK_TASK]:
        assert name in app.tasks, name
