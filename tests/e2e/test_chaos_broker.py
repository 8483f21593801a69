"""Broker outages (RELIABILITY.md scenario 4; issue 4's "Redis restarted mid-run").

A private broker Redis (AOF, noeviction) on 127.0.0.1:6394 is frozen while a client starts a run
through the API, shut down and restarted mid-run, and filled past maxmemory while chunks are in
flight (their acks are refused) and during an enqueue.
Nothing may answer 500, no run may be lost or stay queued, and every run ends exact.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from rest_framework.test import APIClient

from annotations.models import Run
from annotations.services.jobs.starting import start_pseudolabel_run
from tests.e2e.chaos_support import (
    LONG,
    chaos_workers,
    figure,
    private_broker,
    wait_finished,
    wait_for,
    wait_progress,
)
from tests.e2e.test_pseudolabel_workers import assert_run_exact
from tests.factories import ProjectFactory
from tests.harness.data import make_interactions, ready_version

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.postgres, pytest.mark.slow]

N = 600


@pytest.fixture
def broker(tmp_path):
    with private_broker(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def pool(transactional_db, tmp_path, broker, settings):
    # The publishing side uses the production transport options (socket timeouts included).
    options = {**django_settings.CELERY_BROKER_TRANSPORT_OPTIONS, "visibility_timeout": 30}
    options.pop("data_folder_in", None)
    with chaos_workers(tmp_path, broker, settings, options) as workers:
        yield workers


def test_a_frozen_restarted_or_full_broker_never_loses_a_run_nor_answers_500(
    transactional_db, tiny_artifact, pool, broker, admin_ada, caplog
):
    project = ProjectFactory(name="Broker chaos")
    make_interactions(project, N)
    versions = [
        ready_version(project, tiny_artifact, number=k, active=k == 1) for k in (1, 2, 3, 4)
    ]
    worker = pool.start("w1", FAULT_PSEUDOLABEL_DELAY_S="0.2")
    api = APIClient()
    api.force_authenticate(admin_ada)

    # (a) Broker frozen (SIGSTOP) while a client starts a run through the API.
    frozen_s = 30 if LONG else 12
    broker.freeze()
    try:
        started = time.monotonic()
        response = api.post(
            "/api/runs/", {"project": project.pk, "kind": "pseudolabel"}, format="json"
        )
        answered_s = time.monotonic() - started
        time.sleep(max(0.0, frozen_s - answered_s))
    finally:
        broker.thaw()
    figure("frozen broker: API answer seconds", round(answered_s, 1))
    assert response.status_code in (201, 202, 503), response.content
    assert answered_s < 20, answered_s
    if response.status_code != 503:
        run = Run.objects.get(pk=response.json()["id"])
        assert run.model_version == versions[0]
        thawed = time.monotonic()
        wait_progress(run, 0, pool, timeout=90)
        figure("frozen broker: thaw-to-progress seconds", round(time.monotonic() - thawed, 1))
        run = wait_finished(run, pool)
        assert_run_exact(run, pool)
    threshold = timedelta(seconds=django_settings.DDI_REQUEUE_QUEUED_AFTER_S)
    orphans = Run.objects.filter(
        state=Run.State.QUEUED, heartbeat_at__lt=timezone.now() - threshold
    )
    assert not orphans.exists(), list(orphans.values("pk", "heartbeat_at"))

    # (b) Broker shut down mid-run (AOF flushed) and restarted with the same command.
    run = start_pseudolabel_run(project=project, model_version=versions[1])
    done = wait_progress(run, 0, pool)
    broker.shutdown()
    time.sleep(2)
    broker.start()
    assert broker.client().exists("_kombu.binding.inference"), "AOF kept kombu's bindings"
    restarted = time.monotonic()
    wait_progress(run, done, pool, timeout=90)
    figure("broker restart: restart-to-progress seconds", round(time.monotonic() - restarted, 1))
    run = wait_finished(run, pool)
    assert_run_exact(run, pool)

    # (c) Broker out of memory while a run's chunks are in flight (their late acks are refused)
    # and during another run's enqueue (fails loudly, that run stays queued). The worker must
    # outlive the refused acks, and both runs end exact once memory is freed.
    in_flight = start_pseudolabel_run(project=project, model_version=versions[2])
    wait_progress(in_flight, 0, pool)
    client = broker.client()
    client.set("ballast", b"x" * (3 * 1024 * 1024))
    client.config_set("maxmemory", "2mb")
    try:
        with caplog.at_level(logging.ERROR, logger="annotations.services.jobs.dispatch"):
            run = start_pseudolabel_run(project=project, model_version=versions[3])
        wait_for(
            lambda: "OutOfMemoryError" in worker.tail(200_000),
            timeout=60,
            what="a chunk's acknowledgement refused by the full broker",
        )
        run.refresh_from_db()
        assert run.state == Run.State.QUEUED, run.state
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert f"run {run.pk}" in logged and "stays queued" in logged, logged
        assert "OOM" in logged or "maxmemory" in logged, logged
        time.sleep(2)
        assert worker.process.poll() is None, worker.tail()
    finally:
        client.delete("ballast")
        client.config_set("maxmemory", "0")
    for each in (in_flight, run):
        assert_run_exact(wait_finished(each, pool), pool)
    logs = pool.full_logs()
    assert "Unrecoverable error" not in logs, logs[-4000:]
    assert "InconsistencyError" not in logs + caplog.text
