"""The embedded default, for real: `make run`'s worker on SQLite + the filesystem broker.

No PostgreSQL, no Redis, no eager mode: a `celery -A ddi_site worker -B -Q
default,training,inference -c 1` subprocess (the command `make run` starts) with its own
DDI_VAR_DIR (SQLite file DB and broker folders inside it) and no DATABASE_URL/CELERY_BROKER_URL.
The data is created and the retrain is started by `manage.py` subprocesses against that same
file, so nothing here touches the test run's database. The test reads the file DB directly
to follow the Run row and to check the predictions.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from modeling.inference import Predictor
from tests.harness.data import ALL_PATTERNS
from tests.harness.processes import stop_session

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
N_INTERACTIONS = 48

# One Django start-up for all of the setup: migrate, then (while the worker starts) import the
# interactions with their seed labels and start a retrain, all through the services.
SETUP = """
from pathlib import Path
from django.core.management import call_command
call_command("migrate", "--noinput", verbosity=0)
print("MIGRATED", flush=True)
from annotations.models import Project
from annotations.services.importing import ColumnMapping, import_interactions
from annotations.services.jobs.starting import start_retrain_run
project = Project.objects.get(name="DrugBank DDI")
mapping = ColumnMapping(label="label")
import_interactions(project=project, path=Path(CSV_PATH), mapping=mapping)
run = start_retrain_run(project=project, params={"backbone": "tiny-random-bert", "epochs": 3})
print("RUN", run.pk, flush=True)
"""


def embedded_env(var_dir: Path) -> dict:
    """The parent's environment minus every setting a developer could have exported."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DDI_", "CELERY_", "DATABASE_", "DB_", "PYTEST", "DJANGO_"))
    }
    # The tiny random model cannot reach the promotion floor (see tests/conftest.py).
    env.update(DDI_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1", DDI_PROMOTION_MIN_MACRO_F1="0")
    return env


def write_csv(path: Path) -> None:
    """DrugBank-shaped rows with a seed label each (the importer blinds and stores them)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["Drug 1", "Drug 2", "Interaction Description", "label"])
        for i in range(N_INTERACTIONS):
            label, blinded = ALL_PATTERNS[i % len(ALL_PATTERNS)]
            a, b = f"Alphazol{i}", f"Betamab{i}"
            writer.writerow([a, b, blinded.replace("DRUG_A", a).replace("DRUG_B", b), label])


class Processes:
    """Subprocesses of one test, each in its own session; all stopped at the end."""

    def __init__(self, env: dict):
        self.env = env
        self.started: list[subprocess.Popen] = []

    def start(self, command: list[str], **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, start_new_session=True, **kwargs
        )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            stop_session(process, grace_s=20)


@pytest.fixture
def processes(tmp_path):
    running = Processes(embedded_env(tmp_path / "var"))
    yield running
    running.stop_all()


def start_make_run_worker(processes: Processes, tmp_path: Path, log: Path) -> None:
    """The worker command of `make run` (with beat), logging to ``log``."""
    command = [
        *(sys.executable, "-m", "celery", "-A", "ddi_site", "worker", "-B"),
        *("-Q", "default,training,inference", "-c", "1", "-l", "INFO"),
        *("--schedule", str(tmp_path / "var" / "celerybeat-schedule")),
    ]
    with open(log, "wb") as out:
        processes.start(command, stdout=out, stderr=subprocess.STDOUT)


def read(db: Path, sql: str, params=()) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(sql, params).fetchall()


def wait_for_run(db: Path, run_id: int, log: Path, timeout: float = 120) -> tuple:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [row] = read(db, "SELECT state, error, stage FROM annotations_run WHERE id = ?", [run_id])
        if row[0] not in ("queued", "running"):
            return row
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-4000:]
    raise AssertionError(f"run {run_id} still {row} after {timeout:.0f} s; worker log:\n{tail}")


def test_make_runs_embedded_worker_retrains_and_pseudolabels_every_interaction_exactly(
    processes, tmp_path
):
    data = tmp_path / "seed.csv"
    write_csv(data)
    db, log = tmp_path / "var" / "ddi.sqlite3", tmp_path / "worker.log"
    setup = processes.start(
        [sys.executable, "manage.py", "shell", "-c", SETUP.replace("CSV_PATH", repr(str(data)))],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    for line in setup.stdout:
        output.append(line)
        if line.startswith("MIGRATED"):
            # The worker starts (torch import, beat) while the setup imports the data.
            start_make_run_worker(processes, tmp_path, log)
    assert setup.wait(timeout=120) == 0, "".join(output)
    run_id = int("".join(output).split("RUN")[1].split()[0])

    state, error, _ = wait_for_run(db, run_id, log)

    assert state == "succeeded", error
    [(version_id, artifact)] = read(
        db, "SELECT id, artifact_path FROM annotations_modelversion WHERE is_active = 1"
    )
    rows = read(
        db,
        "SELECT i.blinded_text, p.predicted_class, p.confidence, p.probabilities, p.id "
        "FROM annotations_interaction i LEFT JOIN annotations_prediction p "
        "ON p.interaction_id = i.id AND p.model_version_id = ? ORDER BY i.id",
        [version_id],
    )
    assert len(rows) == N_INTERACTIONS
    assert all(row[4] is not None for row in rows), "an interaction has no prediction"
    [(count,)] = read(
        db, "SELECT COUNT(*) FROM annotations_prediction WHERE model_version_id = ?", [version_id]
    )
    assert count == N_INTERACTIONS  # one each: none duplicated
    predictor = Predictor.load(Path(artifact))
    scores = predictor.score([row[0] for row in rows])
    expected = scores.probabilities.astype(np.float64)
    for (_, predicted_class, confidence, probabilities, _), probs, served in zip(
        rows, expected, scores.confidence, strict=True
    ):
        assert predicted_class == predictor.classes[int(probs.argmax())]
        assert confidence == pytest.approx(float(served), abs=1e-5)
        assert json.loads(probabilities) == pytest.approx(probs.tolist(), abs=1e-6)
