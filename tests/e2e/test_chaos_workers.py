"""Worker faults (RELIABILITY.md scenarios 1-3): killed pool child, killed worker, short
visibility timeout with two workers, a chaos loop of random kills, and a poison chunk.

Real Celery workers (prefork, one process each) on PostgreSQL and a private AOF Redis broker.
Every surviving run must be exact: one prediction per interaction, equal to the in-process model.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from annotations.models import Run, RunChunk
from annotations.services.jobs.starting import start_pseudolabel_run
from annotations.services.jobs.watchdog import requeue_stale_runs
from tests.e2e.chaos_support import (
    LONG,
    chaos_pool,
    figure,
    log_times,
    private_broker,
    progress_of,
    wait_finished,
    wait_for,
    wait_progress,
)
from tests.e2e.test_pseudolabel_workers import assert_run_exact
from tests.factories import ProjectFactory
from tests.harness.data import make_interactions, ready_version
from tests.harness.environment import celery_broker

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.postgres, pytest.mark.slow]


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


@pytest.fixture
def project(transactional_db):
    return ProjectFactory(name="Chaos DDI")


def test_a_killed_pool_child_is_requeued_at_once_and_without_reject_the_watchdog_recovers_it(
    project, tiny_artifact, pool
):
    n = 1000
    make_interactions(project, n)
    ready_version(project, tiny_artifact)
    # Control: reject_on_worker_lost off, one chunk. The killed child's message is acked and
    # lost; only the watchdog can bring the chunk back.
    # 0.5 s per 20-row batch: the single chunk lasts >= 25 s, so it outlives every phase.
    slow = {"FAULT_PSEUDOLABEL_DELAY_S": "0.5"}
    control = pool.start(
        "ctl",
        CELERY_TASK_REJECT_ON_WORKER_LOST="False",
        DDI_PSEUDOLABEL_CHUNK_SIZE=str(n),
        **slow,
    )
    run = start_pseudolabel_run(project=project)
    done = wait_progress(run, 0, pool, watchdog=False)
    control.kill_child()
    wait_for(lambda: "WorkerLostError" in control.tail(20000), timeout=30, what="WorkerLostError")
    stuck_at = progress_of(run)
    time.sleep(8)  # > lease (3 s) and > DDI_STALE_AFTER_S (6 s): nobody redelivers it
    run.refresh_from_db()
    chunk = run.chunks.get()
    assert run.progress_done == stuck_at, "the acked message must not come back by itself"
    assert run.state == Run.State.RUNNING
    assert chunk.state == RunChunk.State.RUNNING and chunk.lease_expires_at < timezone.now()
    assert timezone.now() - run.heartbeat_at > timedelta(seconds=6), "heartbeat is stale"
    counts = requeue_stale_runs()
    assert counts["chunks"] == 1, counts  # the watchdog hands the chunk back and re-sends it
    done = wait_progress(run, stuck_at, pool, watchdog=False, timeout=60)

    # Whole worker killed (power loss), restarted with the default reject_on_worker_lost=True.
    control.kill_group()
    worker = pool.start("w1", **slow)
    restarted = time.monotonic()
    done = wait_progress(run, done, pool)
    figure("group kill: restart-to-progress seconds", round(time.monotonic() - restarted, 1))

    # Pool child killed: the message is rejected and requeued at once, not after the VT (30 s).
    killed = time.monotonic()
    worker.kill_child()
    done = wait_progress(run, done, pool, watchdog=False, timeout=25)
    recovered_s = time.monotonic() - killed
    log = worker.log.read_text(errors="replace")
    lost = log_times(log, "WorkerLostError")
    assert lost, worker.tail()
    again = [t for t in log_times(log, r"pseudolabel_chunk\[.*\] received") if t >= lost[0]]
    assert again, "the chunk was not redelivered after the pool child died"
    redelivery_s = (again[0] - lost[0]).total_seconds()
    figure("child kill: WorkerLostError-to-redelivery seconds", round(redelivery_s, 2))
    figure("child kill: kill-to-progress seconds (lease 3 s)", round(recovered_s, 1))
    assert redelivery_s < 5, redelivery_s  # at once (visibility timeout is 30 s)

    run = wait_finished(run, pool)
    assert_run_exact(run, pool)


def test_a_visibility_timeout_shorter_than_a_chunk_never_lets_two_workers_hold_it(
    project, tiny_artifact, pool
):
    make_interactions(project, 100)  # one chunk of 5 batches
    ready_version(project, tiny_artifact)
    slow = {
        "CELERY_VISIBILITY_TIMEOUT": "5",
        # kombu sweeps expired unacked messages back on a timer (settings: 30 s in production).
        "CELERY_UNACKED_RESTORE_INTERVAL": "1",
        "FAULT_PSEUDOLABEL_DELAY_S": "4",  # a chunk takes ~20 s, four times the VT
        "DDI_CHUNK_LEASE_S": "10",  # renewed by every batch
    }
    first = pool.start("w1", **slow)
    second = pool.start("w2", **slow)
    run = start_pseudolabel_run(project=project)
    seen: list[tuple[float, str, object]] = []  # (time, owner, lease_expires_at)
    takeovers = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run.refresh_from_db()
        chunk = run.chunks.first()
        if chunk is not None and chunk.lease_owner:
            now = timezone.now()
            if seen and seen[-1][1] != chunk.lease_owner and seen[-1][2] > now:
                takeovers.append((seen[-1], chunk.lease_owner, now))
            seen.append((time.monotonic(), chunk.lease_owner, chunk.lease_expires_at))
        if not run.is_active:
            break
        time.sleep(0.1)
    run = wait_finished(run, pool)
    assert_run_exact(run, pool)
    assert not takeovers, f"a fresh lease was taken over: {takeovers}"

    logs = {w.name: w.log.read_text(errors="replace") for w in (first, second)}
    chunk_task = r"pseudolabel_chunk\[(?P<id>[0-9a-f-]+)\] received"
    received = {
        name: log_times(log, r"pseudolabel_chunk\[.*\] received") for name, log in logs.items()
    }
    assert all(received.values()), f"both workers must receive the chunk task: {received}"
    starts = sorted(t for times in received.values() for t in times)
    delay = (starts[1] - starts[0]).total_seconds()
    figure("VT=5s, chunk ~20s: first redelivery after seconds", round(delay, 1))
    assert 4 <= delay < 30, delay  # the VT setting took effect (celery#7651), well before 1 h
    early_exit = "is leased until"  # the redelivered copy saw a fresh lease and backed off
    assert any(early_exit in log for log in logs.values()), pool.logs()
    owners = {owner for _, owner, _ in seen}
    figure("VT=5s: distinct lease owners of the chunk", len(owners))
    assert chunk_task  # documents the log line the figures come from


def test_a_chaos_loop_of_random_kills_ends_exact_and_a_poison_chunk_fails_after_max_attempts(
    project, tiny_artifact, pool, broker
):
    kills = 15 if LONG else 4
    n = 4000 if LONG else 1200
    interactions = make_interactions(project, n)
    ready_version(project, tiny_artifact)
    rng = random.Random(20240607)
    plan = ["child", "group"] * (kills // 2) + ["child"] * (kills % 2)
    rng.shuffle(plan)
    worker = pool.start("w1")
    run = start_pseudolabel_run(project=project)
    done = 0
    survived = {"child": 0, "group": 0}
    for kind in plan:
        done = wait_progress(run, done, pool)
        time.sleep(rng.uniform(0.5, 2.5) if not LONG else rng.uniform(2, 10))
        run.refresh_from_db()
        assert run.is_active, f"the run ended before kill {sum(survived.values()) + 1}"
        if kind == "child":
            worker.kill_child()
        else:
            worker.kill_group()
            worker = pool.start("w1")
        survived[kind] += 1
    run = wait_finished(run, pool, timeout=300)
    assert_run_exact(run, pool)
    figure(f"chaos loop ({n} interactions): kills survived", survived)

    # Poison: a chunk whose batch SIGKILLs its process every time. It must end failed after
    # DDI_MAX_ATTEMPTS starts, and a run queued behind it must still finish.
    max_attempts = 3
    worker.stop()
    poison = interactions[150]
    worker = pool.start(
        "poisoned",
        FAULT_POISON_INTERACTION_ID=str(poison.pk),
        DDI_MAX_ATTEMPTS=str(max_attempts),
    )
    poison_run = start_pseudolabel_run(
        project=project, model_version=ready_version(project, tiny_artifact, number=2, active=False)
    )
    other = ProjectFactory(name="Chaos DDI behind the poison")
    make_interactions(other, 200, start=n)
    behind = start_pseudolabel_run(project=other, model_version=ready_version(other, tiny_artifact))
    poison_run = wait_finished(poison_run, pool, timeout=180)
    behind = wait_finished(behind, pool, timeout=120)

    assert poison_run.state == Run.State.FAILED, poison_run.state
    assert "giving up" in poison_run.error and "DDI_MAX_ATTEMPTS=3" in poison_run.error
    bad = poison_run.chunks.get(state=RunChunk.State.FAILED)
    assert bad.first_id <= poison.pk <= bad.last_id
    assert bad.attempts == max_attempts + 1  # three starts that died, one claim that gave up
    log = worker.log.read_text(errors="replace")
    deaths = log.count(f"poison interaction {poison.pk} in this batch")
    assert deaths == max_attempts, deaths
    # One WorkerLostError per death: the message was not delivered again after the cap.
    assert log.count("Task handler raised error: WorkerLostError") == deaths, worker.tail()
    assert_run_exact(behind, pool)
    wait_for(lambda: broker.queue_length("inference") == 0, timeout=60, what="empty queue")
    figure("poison chunk: deaths before failed (DDI_MAX_ATTEMPTS=3)", deaths)
    figure("poison chunk: error", poison_run.error[:120])
