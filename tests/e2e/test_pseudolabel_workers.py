"""Pseudo-labeling through real Celery workers on PostgreSQL + Redis, with failures injected.

Every test ends with the same check: exactly one prediction per interaction for the version,
equal to what the model computes in-process, and the run succeeded.
"""

from __future__ import annotations

import re
import time

import pytest
import redis
from django.db import connection

from annotations.models import Interaction, Prediction, Run
from annotations.services.jobs.dispatch import send_chunk, send_run
from annotations.services.jobs.starting import start_pseudolabel_run
from annotations.services.jobs.watchdog import requeue_stale_runs
from modeling.inference import Predictor
from tests.factories import ProjectFactory
from tests.harness.data import make_interactions, ready_version
from tests.harness.environment import celery_broker
from tests.harness.processes import REDIS_URL, WORKER_DB_APP_NAME, WorkerPool, worker_env

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.slow]

N = 1000


@pytest.fixture
def broker_url():
    # Drop queued messages but keep kombu's queue bindings (_kombu.binding.*): without them a
    # publish before any worker re-declares its queues would be routed nowhere.
    client = redis.Redis.from_url(REDIS_URL)
    stale = [k for k in client.keys("*") if not k.startswith(b"_kombu.binding.")]
    if stale:
        client.delete(*stale)
    yield REDIS_URL


@pytest.fixture
def workers(transactional_db, tmp_path, broker_url, settings):
    # The test process plays beat: it runs the watchdog with short thresholds.
    settings.DDI_REQUEUE_QUEUED_AFTER_S = 3
    settings.DDI_STALE_AFTER_S = 6
    pool = WorkerPool(worker_env(tmp_path, broker_url), tmp_path)
    with celery_broker(broker_url, {"visibility_timeout": 30}):
        yield pool
    pool.stop_all()


@pytest.fixture
def project(transactional_db):
    """Own project: transactional tests flush the tables, the migration's default one included."""
    return ProjectFactory(name="E2E DDI")


@pytest.fixture
def version(project, tiny_artifact):
    make_interactions(project, N)
    return ready_version(project, tiny_artifact)


def progress(run: Run) -> int:
    run.refresh_from_db()
    return run.progress_done


def wait_for_progress(run: Run, above: int, pool: WorkerPool, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = progress(run)
        if done > above:
            return done
        time.sleep(0.1)
    raise AssertionError(f"no progress past {above}: {run.state} {run.error}\n{pool.logs()}")


def wait_until_finished(run: Run, pool: WorkerPool, timeout: float = 120) -> Run:
    deadline = time.monotonic() + timeout
    last_watchdog = 0.0
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if not run.is_active:
            return run
        if time.monotonic() - last_watchdog > 1.0:
            requeue_stale_runs()
            last_watchdog = time.monotonic()
        time.sleep(0.2)
    raise AssertionError(f"run still {run.state} at {run.progress_done}\n{pool.logs()}")


def assert_run_exact(run: Run, pool: WorkerPool) -> None:
    """One prediction per interaction for the version, equal to the in-process reference."""
    assert run.state == Run.State.SUCCEEDED, f"{run.state}: {run.error}\n{pool.logs()}"
    version = run.model_version
    rows = dict(
        Prediction.objects.filter(model_version=version).values_list("interaction_id", "confidence")
    )
    interactions = list(Interaction.objects.filter(project=version.project).order_by("pk"))
    assert Prediction.objects.filter(model_version=version).count() == len(interactions)
    assert set(rows) == {i.pk for i in interactions}
    assert run.progress_done == run.progress_total == len(interactions)
    predictor = Predictor.load(version.artifact_path)
    texts = [i.blinded_text for i in interactions]
    # Equal up to float32 rounding: a retried chunk resumes at another cursor, so its texts meet
    # other batch-mates and another padded length than in the reference's one pass (seen: 6e-8).
    confidence = predictor.score(texts).confidence  # the calibrated confidence
    for interaction, expected in zip(interactions, confidence, strict=True):
        assert rows[interaction.pk] == pytest.approx(float(expected), abs=1e-5)


def kill_child_mid_task(worker, run: Run, pool: WorkerPool, done: int, tries: int = 5) -> int:
    """SIGKILL the pool process until a kill lands while a chunk is running.

    A kill between two chunks only makes the main process fork a new child (no task is lost),
    which is not the failure under test; it happened once in three CI runs. Celery logs
    WorkerLostError when a running task's process dies, so that is the sign the kill landed.
    """
    for _ in range(tries):
        worker.kill_child()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if "WorkerLostError" in pool.full_logs():
                return progress(run)
            time.sleep(0.1)
        done = wait_for_progress(run, done, pool)
    raise AssertionError(f"no kill landed while a chunk was running\n{pool.logs()}")


@pytest.mark.chaos
def test_sigkilled_workers_resume_and_every_interaction_gets_one_prediction(
    project, version, workers
):
    worker = workers.start("w1")
    run = start_pseudolabel_run(project=project)

    done = wait_for_progress(run, 0, workers)
    # OOM killer: the message is rejected and redelivered at once
    done = kill_child_mid_task(worker, run, workers, done)
    done = wait_for_progress(run, done, workers)
    worker.kill_group()  # power loss: unacked messages stay with the dead worker
    worker = workers.start("w1")
    done = wait_for_progress(run, done, workers)
    worker.kill_group()
    worker = workers.start("w1")

    run = wait_until_finished(run, workers)
    assert_run_exact(run, workers)
    assert "WorkerLostError" in workers.full_logs()


@pytest.mark.chaos
def test_a_database_connection_dropped_mid_run_is_retried(project, version, workers):
    workers.start("w1")
    run = start_pseudolabel_run(project=project)
    done = 0
    for _ in range(2):
        done = wait_for_progress(run, done, workers)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s AND datname = current_database()",
                [WORKER_DB_APP_NAME],
            )
            assert cursor.fetchone()[0] >= 1

    run = wait_until_finished(run, workers)
    assert_run_exact(run, workers)


def test_duplicate_jobs_are_harmless_and_two_workers_share_the_chunks_with_the_same_rows(
    project, version, workers, tiny_artifact
):
    workers.start("w1")
    one = start_pseudolabel_run(project=project)
    assert start_pseudolabel_run(project=project).pk == one.pk  # two starts, one run
    send_run(one.pk)  # the same job message sent twice more
    send_run(one.pk)
    wait_for_progress(one, 0, workers)
    for chunk_id in one.chunks.values_list("pk", flat=True):
        send_chunk(chunk_id)  # and every chunk delivered twice
    one = wait_until_finished(one, workers)
    second_version = ready_version(project, tiny_artifact, number=2, active=False)
    w2 = workers.start("w2")
    two = wait_until_finished(
        start_pseudolabel_run(project=project, model_version=second_version), workers
    )

    assert_run_exact(one, workers)
    assert_run_exact(two, workers)
    columns = ("interaction_id", "predicted_class", "confidence", "margin", "probabilities")
    rows_one = list(one.model_version.predictions.order_by("interaction_id").values_list(*columns))
    rows_two = list(second_version.predictions.order_by("interaction_id").values_list(*columns))
    # Same ids and classes exactly; the numbers to float32 rounding (other batch-mates).
    assert [row[:2] for row in rows_one] == [row[:2] for row in rows_two]
    assert [row[2:4] for row in rows_one] == [pytest.approx(row[2:4], abs=1e-6) for row in rows_two]
    assert [row[4] for row in rows_one] == [pytest.approx(row[4], abs=1e-6) for row in rows_two]
    assert Run.objects.filter(kind=Run.Kind.PSEUDOLABEL).count() == 2
    # The second worker took chunks of the second run (its own log says so). Whether sharing
    # makes a run faster is a speed question for bench/pseudolabel.py: a wall-time race between
    # two runs on a shared 2-core box failed once at 11.09 s vs 10.91 s.
    log = w2.log.read_text(errors="replace")
    assert re.search(r"annotations\.pseudolabel_chunk\[[^\]]+\] succeeded", log), w2.tail(2500)
