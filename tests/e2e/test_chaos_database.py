"""Database faults (RELIABILITY.md scenario 5): a worker's PostgreSQL backend frozen mid-chunk
past the chunk task's soft time limit, and an import's backend terminated mid-way.

(The backend *terminated* mid-chunk is tests/e2e/test_pseudolabel_workers.py's
test_a_database_connection_dropped_mid_run_is_retried.)
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings
from django.db import connection

from annotations.models import ImportJob, Interaction, Project
from annotations.services.jobs.starting import start_pseudolabel_run
from tests.e2e.chaos_support import (
    LONG,
    chaos_pool,
    figure,
    private_broker,
    wait_finished,
    wait_for,
    wait_progress,
)
from tests.e2e.test_pseudolabel_workers import assert_run_exact
from tests.factories import ProjectFactory
from tests.harness.data import make_interactions, ready_version
from tests.harness.environment import celery_broker
from tests.harness.processes import ROOT, WORKER_DB_APP_NAME

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.postgres, pytest.mark.slow]

IMPORT_APP_NAME = "ddi-import"


def backends(application_name: str, where: str = "TRUE") -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity"  # noqa: S608
            f" WHERE application_name = %s AND datname = current_database() AND {where}",
            [application_name],
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def broker(tmp_path):
    with private_broker(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def pool(transactional_db, tmp_path, broker, settings):
    workers = chaos_pool(tmp_path, broker, settings)
    with celery_broker(broker.url, {"visibility_timeout": 30}):
        yield workers
    workers.stop_all()


def test_a_frozen_backend_hits_the_soft_time_limit_rolls_back_and_the_run_ends_exact(
    transactional_db, tiny_artifact, pool
):
    project = ProjectFactory(name="Frozen backend")
    make_interactions(project, 600)
    ready_version(project, tiny_artifact)
    soft_limit = 4
    # The sleep is inside each batch transaction: the backend is caught "idle in transaction"
    # (holding the chunk's row lock) instead of in a few-millisecond window between sleeps.
    worker = pool.start(
        "w1",
        DDI_CHUNK_SOFT_TIME_LIMIT_S=str(soft_limit),
        FAULT_PSEUDOLABEL_DELAY_S="0.3",
        FAULT_PSEUDOLABEL_DELAY_IN_TRANSACTION="1",
    )
    baseline = len(backends(WORKER_DB_APP_NAME))
    run = start_pseudolabel_run(project=project)
    done = wait_progress(run, 0, pool)
    frozen = wait_for(
        lambda: backends(WORKER_DB_APP_NAME, "state <> 'idle'"),
        timeout=30,
        what="busy backend",
        every=0.05,
    )
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(soft_limit + 4)  # no database calls here: our queries could wait on its locks
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    thawed = time.monotonic()
    wait_progress(run, done, pool, timeout=90)
    figure("frozen backend: thaw-to-progress seconds", round(time.monotonic() - thawed, 1))
    run = wait_finished(run, pool)
    assert_run_exact(run, pool)
    log = worker.log.read_text(errors="replace")
    assert "SoftTimeLimitExceeded" in log or "WorkerLostError" in log, worker.tail()
    assert run.chunks.filter(attempts__gt=1).exists()  # the frozen chunk was retried
    wait_for(
        lambda: len(backends(WORKER_DB_APP_NAME)) <= baseline + 1,
        timeout=30,
        what="worker connections back to baseline",
    )
    figure(
        "frozen backend: worker connections before/after",
        (baseline, len(backends(WORKER_DB_APP_NAME))),
    )


def write_import_file(path, n: int) -> None:
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["drug_a", "drug_b", "description"])
        for i in range(n):
            a, b = f"Chaosamine{i}", f"Terminatol{i}"
            writer.writerow([a, b, f"{a} may increase the anticoagulant activities of {b}."])


def test_an_import_whose_backend_is_terminated_writes_nothing_and_the_rerun_imports_exactly_n(
    transactional_db, tmp_path
):
    n = 50_000 if LONG else 20_000  # RELIABILITY.md: a 50k-row import
    path = tmp_path / "interactions.csv"
    write_import_file(path, n)
    db = django_settings.DATABASES["default"]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DB_"))},
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@127.0.0.1:5432/{db['NAME']}",
        "DB_APPLICATION_NAME": IMPORT_APP_NAME,
    }
    command = [
        sys.executable,
        "manage.py",
        "import_interactions",
        str(path),
        "--project",
        "Import chaos",
        "--create-project",
    ]
    importer = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    # Mid-way = its transaction has written rows (it holds a transaction id).
    writing = wait_for(
        lambda: importer.poll() is None and backends(IMPORT_APP_NAME, "backend_xid IS NOT NULL"),
        timeout=240 if LONG else 120,
        what="the import writing rows",
        every=0.05,
    )
    time.sleep(0.5)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [writing[0]])
    output = importer.communicate(timeout=60)[0].decode(errors="replace")
    assert importer.returncode != 0, output[-2000:]
    project = Project.objects.get(name="Import chaos")
    assert Interaction.objects.filter(project=project).count() == 0
    jobs = list(ImportJob.objects.filter(project=project))
    assert all(job.interactions_created == 0 for job in jobs), jobs
    # The job row is committed before the import's transaction: it must not stay "running".
    assert [job.state for job in jobs] == [ImportJob.State.FAILED], jobs
    assert jobs[0].errors[0].startswith("interrupted:"), jobs[0].errors

    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-2000:]
    assert Interaction.objects.filter(project=project).count() == n
    job = ImportJob.objects.get(project=project, state=ImportJob.State.SUCCEEDED)
    assert job.interactions_created == n
    figure("import terminated mid-way: rows after kill / after rerun", (0, n))
    figure("import terminated mid-way: ImportJob states", sorted(j.state for j in jobs))
