"""Scheduled retraining: beat's periodic tasks, retrain policies, single-flight triggers.

django-celery-beat stores the schedules in the database (admin UI: Periodic tasks). Exactly one
beat process must run; even so every trigger is single flight: a Run.idempotency_key derived
from the schedule and its time window, plus a conditional update on the policy row, make two
beats (or a double "run now") create one run.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotations.models import LabelEvent, ModelVersion, Project, RetrainPolicy, Run
from annotations.services.runs import TRAINING_KINDS, start_retrain_run

logger = logging.getLogger(__name__)

WATCHDOG_TASK = "annotations.requeue_stale_runs"
POLICY_TASK = "annotations.check_retrain_policies"
SCHEDULED_RETRAIN_TASK = "annotations.scheduled_retrain"


def setup_default_schedules(*, watchdog_every_s: int = 60, policy_every_s: int = 300) -> list[str]:
    """Create (or update) the watchdog and retrain-policy PeriodicTasks. Safe to run twice."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    created = []
    for name, task, seconds in (
        ("ddi: watchdog (re-send lost or stale runs)", WATCHDOG_TASK, watchdog_every_s),
        ("ddi: retrain policies (N new reviews)", POLICY_TASK, policy_every_s),
    ):
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=seconds, period=IntervalSchedule.SECONDS
        )
        _, was_created = PeriodicTask.objects.update_or_create(
            name=name, defaults={"task": task, "interval": interval, "enabled": True}
        )
        if was_created:
            created.append(name)
    return created


def schedule_nightly_retrain(*, project: Project, hour: int = 2, minute: int = 0):
    """A PeriodicTask that retrains the project every night (what an admin does in the admin)."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=str(minute),
        hour=str(hour),
        day_of_week="*",
        day_of_month="*",
        month_of_year="*",
        timezone=timezone.get_default_timezone_name(),
    )
    task, _ = PeriodicTask.objects.update_or_create(
        name=f"ddi: nightly retrain of {project.name}",
        defaults={
            "task": SCHEDULED_RETRAIN_TASK,
            "crontab": crontab,
            "interval": None,
            "args": json.dumps([project.pk]),
            "enabled": True,
        },
    )
    return task


def _window_start(now: datetime, minutes: int) -> datetime:
    minutes = max(1, minutes)
    epoch_minutes = int(now.timestamp() // 60)
    return datetime.fromtimestamp((epoch_minutes - epoch_minutes % minutes) * 60, tz=now.tzinfo)


def trigger_scheduled_retrain(*, project_id: int, window_minutes: int = 60) -> Run | None:
    """Start one retrain run per (project, time window); a second trigger returns the first run.

    Returns None (and logs) when the project is gone. Safe to run twice.
    """
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        logger.warning("scheduled retrain: project %s does not exist", project_id)
        return None
    window = _window_start(timezone.now(), window_minutes)
    key = f"schedule:retrain:{project_id}:{window:%Y-%m-%dT%H:%M}"
    return start_retrain_run(project=project, idempotency_key=key)


def count_new_reviews(*, project: Project, since: datetime | None) -> int:
    """Review events (accepts, changes, flags) of the project after ``since``."""
    events = LabelEvent.objects.filter(interaction__project=project, source="review")
    if since is not None:
        events = events.filter(created_at__gt=since)
    return events.count()


def check_retrain_policies() -> list[Run]:
    """Start a retrain for every enabled policy whose project got min_new_reviews new reviews.

    "New" means after the active version was created and after the policy last fired. The
    policy row is claimed with a conditional update on last_triggered_at, and the run key is
    derived from the old value, so concurrent checks start one run. Safe to run twice.
    """
    started = []
    for policy in RetrainPolicy.objects.filter(enabled=True).select_related("project"):
        project = policy.project
        busy = Run.objects.filter(
            project=project, kind__in=TRAINING_KINDS, state__in=Run.ACTIVE_STATES
        ).exists()
        if busy:
            continue
        active = ModelVersion.objects.filter(project=project, is_active=True).first()
        marks = [t for t in (active and active.created_at, policy.last_triggered_at) if t]
        since = max(marks) if marks else None
        if count_new_reviews(project=project, since=since) < policy.min_new_reviews:
            continue
        previous = policy.last_triggered_at
        with transaction.atomic():
            claimed = RetrainPolicy.objects.filter(
                Q(last_triggered_at=previous) if previous else Q(last_triggered_at__isnull=True),
                pk=policy.pk,
            ).update(last_triggered_at=timezone.now())
            if not claimed:
                continue
            stamp = previous.isoformat() if previous else "never"
            params = {}
            if policy.include_pseudo_labels_above is not None:
                params["include_pseudo_labels_above"] = policy.include_pseudo_labels_above
            run = start_retrain_run(
                project=project,
                params=params,
                idempotency_key=f"schedule:policy:{policy.pk}:{stamp}",
            )
        logger.info("retrain policy of %s fired: run %s", project, run.pk)
        started.append(run)
    return started
