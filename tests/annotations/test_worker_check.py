"""A queued run says when no running worker consumes its queue (Celery inspect, real workers)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from annotations.management.commands._jobs import follow
from annotations.models import Run
from annotations.services.jobs.starting import start_train_run
from annotations.services.jobs.workers import (
    WORKER_COMMAND,
    describe_missing_consumer,
    list_consumed_queues,
)
from tests.harness.environment import celery_broker


def _broker_options(var: Path) -> dict:
    broker = var / "broker"
    return {
        "data_folder_in": str(broker / "queue"),
        "data_folder_out": str(broker / "queue"),
        "processed_folder": str(broker / "processed"),
        "control_folder": str(broker / "control"),
        "store_processed": False,
    }


@contextmanager
def celery_worker(tmp_path: Path, queues: str):
    """A real `celery worker -Q <queues>` on a private filesystem broker; this process publishes
    and broadcasts to the same folders."""
    var = tmp_path / "var"
    for sub in ("queue", "processed", "control"):
        (var / "broker" / sub).mkdir(parents=True, exist_ok=True)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DDI_", "CELERY_", "DATABASE_"))
    }
    env.update(DDI_VAR_DIR=str(var), CELERY_BROKER_URL="filesystem://")
    command = [sys.executable, "-m", "celery", "-A", "ddi_site", "worker", "-Q", queues]
    command += ["-P", "solo", "--without-mingle", "--without-gossip", "-n", f"probe-{queues}@%h"]
    process = subprocess.Popen(
        command,
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "worker.log", "w"),  # noqa: SIM115 (closed with the process)
    )
    try:
        with celery_broker("filesystem://", _broker_options(var)):
            deadline = time.monotonic() + 60
            while not list_consumed_queues(use_cache=False):
                assert process.poll() is None, (tmp_path / "worker.log").read_text()
                assert time.monotonic() < deadline, "the worker never answered"
                time.sleep(0.5)
            yield
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_a_worker_on_the_default_queue_only_is_named_with_the_command_that_would(
    project, admin_ada, client, tmp_path
):
    run = start_train_run(project=project, enqueue=False)
    with celery_worker(tmp_path, "default"):
        warning = describe_missing_consumer(run=run, use_cache=False)
        assert "No running worker consumes the 'training' queue" in warning
        assert "the running workers consume only: default" in warning
        assert WORKER_COMMAND in warning

        out = io.StringIO()
        # follow() looks at the queued run it was given, then reads the row: cancelled, it ends.
        Run.objects.filter(pk=run.pk).update(state=Run.State.CANCELLED)
        follow(run, out)
        assert "No running worker consumes the 'training' queue" in out.getvalue()

        Run.objects.filter(pk=run.pk).update(state=Run.State.QUEUED)
        client.force_login(admin_ada)
        page = client.get(reverse("annotations:runs", args=[project.pk])).content.decode()
        assert "No running worker consumes the &#x27;training&#x27; queue" in page


@pytest.mark.slow
def test_a_worker_that_consumes_the_runs_queue_raises_no_warning(project, tmp_path):
    run = start_train_run(project=project, enqueue=False)
    with celery_worker(tmp_path, "default,training,inference"):
        assert describe_missing_consumer(run=run, use_cache=False) == ""


def test_with_no_worker_at_all_the_warning_says_none_answered(project, tmp_path):
    run = start_train_run(project=project, enqueue=False)
    var = tmp_path / "var"
    for sub in ("queue", "processed", "control"):
        (var / "broker" / sub).mkdir(parents=True)
    with celery_broker("filesystem://", _broker_options(var)):
        warning = describe_missing_consumer(run=run, use_cache=False)
    assert "no worker answered" in warning and WORKER_COMMAND in warning
