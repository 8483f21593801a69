"""Run services (params, idempotency, cancel, watchdog, lost enqueue) and scheduled retraining."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from annotations.exceptions import InvalidRunParams, RunNotCancellable
from annotations.models import LabelEvent, RetrainPolicy, Run
from annotations.services.jobs.dispatch import send_run
from annotations.services.jobs.lifecycle import cancel_run
from annotations.services.jobs.schedules import (
    check_retrain_policies,
    schedule_nightly_retrain,
    setup_default_schedules,
    trigger_scheduled_retrain,
)
from annotations.services.jobs.starting import start_train_run
from annotations.services.jobs.watchdog import requeue_stale_runs
from tests.harness.data import make_interactions
from tests.harness.environment import celery_broker


def test_unknown_or_out_of_range_params_are_refused_with_names(project):
    with pytest.raises(InvalidRunParams, match="unknown parameter 'epoch'"):
        start_train_run(project=project, params={"epoch": 3})
    with pytest.raises(InvalidRunParams, match="epochs must be an integer from 1 to 1000"):
        start_train_run(project=project, params={"epochs": 0})


def test_the_run_is_sent_only_after_commit(project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = start_train_run(project=project)
    assert run.state == Run.State.QUEUED
    assert len(callbacks) == 1


def test_the_same_idempotency_key_gives_the_same_run(project):
    first = start_train_run(project=project, idempotency_key="schedule:x:1")
    second = start_train_run(project=project, idempotency_key="schedule:x:1")
    assert first.pk == second.pk


def test_a_queued_run_is_cancelled_at_once_and_an_ended_one_cannot_be(project):
    run = cancel_run(run=start_train_run(project=project))
    assert run.state == Run.State.CANCELLED
    with pytest.raises(RunNotCancellable, match="already ended"):
        cancel_run(run=run)


def test_a_run_whose_enqueue_failed_stays_queued_and_the_watchdog_sends_it(
    project, settings, tmp_path
):
    run = start_train_run(project=project)
    with celery_broker("redis://127.0.0.1:1/0"):  # nothing listens there: broker down
        assert send_run(run.pk) is False
    run.refresh_from_db()
    assert run.state == Run.State.QUEUED

    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    folder = tmp_path / "queue"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    with celery_broker("filesystem://", options):
        counts = requeue_stale_runs()
    assert counts["runs"] == 1
    assert any("annotations.train_model" in p.read_text() for p in folder.iterdir())
    run.refresh_from_db()
    assert run.heartbeat_at > timezone.now() - timedelta(minutes=1)


def test_default_schedules_are_created_once(db):
    setup_default_schedules()
    setup_default_schedules()
    tasks = set(PeriodicTask.objects.values_list("task", flat=True))
    assert {"annotations.requeue_stale_runs", "annotations.check_retrain_policies"} <= tasks
    assert PeriodicTask.objects.filter(task="annotations.requeue_stale_runs").count() == 1


def test_two_scheduled_triggers_in_one_window_start_one_retrain(project):
    schedule = schedule_nightly_retrain(project=project)
    assert schedule.task == "annotations.scheduled_retrain"
    first = trigger_scheduled_retrain(project_id=project.pk)
    second = trigger_scheduled_retrain(project_id=project.pk)
    assert first.pk == second.pk
    assert first.kind == Run.Kind.RETRAIN


def test_a_policy_fires_once_when_enough_new_reviews_arrived(project):
    RetrainPolicy.objects.create(
        project=project, enabled=True, min_new_reviews=3, include_pseudo_labels_above=0.95
    )
    for interaction in make_interactions(project, 3):
        LabelEvent.objects.create(
            interaction=interaction, action="change", source="review", version=1
        )

    [run] = check_retrain_policies()
    assert check_retrain_policies() == []

    assert run.kind == Run.Kind.RETRAIN
    assert run.params == {"include_pseudo_labels_above": 0.95}
    assert run.idempotency_key.startswith("schedule:policy:")


def test_a_policy_below_its_threshold_or_disabled_does_not_fire(project):
    RetrainPolicy.objects.create(project=project, enabled=True, min_new_reviews=5)
    assert check_retrain_policies() == []
