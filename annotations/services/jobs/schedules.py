"""Scheduled retraining: beat's periodic tasks, retrain policies, single-flight triggers.

django-celery-beat stores the schedules in the database (admin UI: Periodic tasks). Exactly one
beat process must run; even so every trigger is single flight: a Run.idempotency_key derived
from the schedule and its time window, plus a conditional update on the policy row, make two
beats (or a double "run now") create one run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotations.models import HUMAN_SOURCES, LabelEvent, ModelVersion, Project, RetrainPolicy, Run
from annotations.services.jobs.lifecycle import TRAINING_KINDS
from annotations.services.jobs.starting import start_retrain_run

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
    # The pseudo-label threshold is the policy's (set on the Schedule page or in the admin).
    policy = RetrainPolicy.objects.filter(project=project).first()
    params = {}
    if policy is not None and policy.include_pseudo_labels_above is not None:
        params["include_pseudo_labels_above"] = policy.include_pseudo_labels_above
    return start_retrain_run(project=project, params=params, idempotency_key=key)


def count_new_reviews(*, project: Project, since: datetime | None) -> int:
    """Review events (accepts, changes, flags, audits, adjudications) after ``since``."""
    events = LabelEvent.objects.filter(interaction__project=project, source__in=HUMAN_SOURCES)
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
        active = ModelVersion.objects.active_for(project)
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


# --- the Schedule page: one retrain schedule per project ----------------------------------------
# The time-based part lives in django-celery-beat (a PeriodicTask running SCHEDULED_RETRAIN_TASK
# with args [project id]); the review-count part and the pseudo-label threshold live in the
# project's RetrainPolicy. Nothing is copied: the page reads both, so an edit made in the Django
# admin shows here and the other way round.


class ScheduleMode(StrEnum):
    OFF = "off"
    NIGHTLY = "nightly"
    WEEKLY = "weekly"
    REVIEWS = "reviews"


WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


@dataclass(frozen=True)
class ProjectSchedule:
    """What the Schedule page shows: the current choice, the next planned run, the last run."""

    mode: ScheduleMode
    hour: int
    minute: int
    weekday: int  # 0 = Sunday, as in crontab
    min_new_reviews: int
    include_pseudo_labels_above: float | None
    timezone_name: str
    periodic_task: object | None
    next_run_at: datetime | None
    reviews_since_last: int | None
    last_run: Run | None

    @property
    def summary(self) -> str:
        """The schedule in one sentence ("Every night at 02:00 (UTC), on human labels only")."""
        at = f"{self.hour:02d}:{self.minute:02d} ({self.timezone_name})"
        when = {
            ScheduleMode.OFF: "Off",
            ScheduleMode.NIGHTLY: f"Every night at {at}",
            ScheduleMode.WEEKLY: f"Every {WEEKDAYS[self.weekday % 7]} at {at}",
            ScheduleMode.REVIEWS: f"After {self.min_new_reviews} new reviews",
        }[self.mode]
        if self.mode == ScheduleMode.OFF:
            return when
        if self.include_pseudo_labels_above is None:
            return f"{when}, on human labels only"
        return f"{when}, also on pseudo-labels above {self.include_pseudo_labels_above:g}"


def _is_project_retrain(task, project_id: int) -> bool:
    try:
        args = json.loads(task.args or "[]")
    except ValueError:
        return False
    return bool(args) and args[0] == project_id


def find_retrain_task(*, project: Project):
    """The project's time-based retrain PeriodicTask (made here or in the admin), or None."""
    from django_celery_beat.models import PeriodicTask

    tasks = PeriodicTask.objects.filter(task=SCHEDULED_RETRAIN_TASK).select_related("crontab")
    matching = [t for t in tasks.order_by("-enabled", "id") if _is_project_retrain(t, project.pk)]
    return matching[0] if matching else None


def _next_crontab_run(task) -> datetime | None:
    if task is None or not task.enabled or task.crontab is None:
        return None
    now = timezone.now()
    schedule = task.crontab.schedule
    return now + schedule.remaining_estimate(now)


def _single_number(value: str) -> int:
    """A crontab field that is one plain number ('2'); 0 for '*', '1-5', '*/2'... (the page's
    choices cannot express those; saving the page replaces them)."""
    return int(value) if value.isdigit() else 0


def get_project_schedule(*, project: Project) -> ProjectSchedule:
    """Read the project's schedule from beat's PeriodicTask and the RetrainPolicy."""
    policy = RetrainPolicy.objects.filter(project=project).first()
    task = find_retrain_task(project=project)
    mode, hour, minute, weekday = ScheduleMode.OFF, 2, 0, 0
    tz_name = timezone.get_default_timezone_name()
    if task is not None and task.enabled and task.crontab is not None:
        crontab = task.crontab
        tz_name = str(crontab.timezone)
        hour, minute = _single_number(crontab.hour), _single_number(crontab.minute)
        weekday = _single_number(crontab.day_of_week)
        mode = ScheduleMode.NIGHTLY if crontab.day_of_week == "*" else ScheduleMode.WEEKLY
    elif policy is not None and policy.enabled:
        mode = ScheduleMode.REVIEWS
    reviews = None
    if mode == ScheduleMode.REVIEWS and policy is not None:
        active = ModelVersion.objects.active_for(project)
        marks = [t for t in (active and active.created_at, policy.last_triggered_at) if t]
        reviews = count_new_reviews(project=project, since=max(marks) if marks else None)
    last_run = (
        Run.objects.filter(project=project, idempotency_key__startswith="schedule:")
        .select_related("model_version")
        .first()
    )
    return ProjectSchedule(
        mode=mode,
        hour=hour,
        minute=minute,
        weekday=weekday,
        min_new_reviews=policy.min_new_reviews if policy else 50,
        include_pseudo_labels_above=policy.include_pseudo_labels_above if policy else None,
        timezone_name=tz_name,
        periodic_task=task,
        next_run_at=_next_crontab_run(task),
        reviews_since_last=reviews,
        last_run=last_run,
    )


@transaction.atomic
def save_project_schedule(
    *,
    project: Project,
    mode: ScheduleMode,
    hour: int = 2,
    minute: int = 0,
    weekday: int = 0,
    min_new_reviews: int = 50,
    include_pseudo_labels_above: float | None = None,
) -> ProjectSchedule:
    """Write the schedule into beat's PeriodicTask and the RetrainPolicy. Safe to run twice.

    Nightly/weekly enable the PeriodicTask (a crontab in the server's time zone) and switch the
    review-count policy off; "after N reviews" does the opposite; "off" disables both. The
    PeriodicTask is kept (disabled) rather than deleted, so its run history stays in the admin.
    """
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    policy, _ = RetrainPolicy.objects.get_or_create(project=project)
    policy.enabled = mode == ScheduleMode.REVIEWS
    policy.min_new_reviews = min_new_reviews
    policy.include_pseudo_labels_above = include_pseudo_labels_above
    policy.save(update_fields=["enabled", "min_new_reviews", "include_pseudo_labels_above"])

    task = find_retrain_task(project=project)
    if mode in (ScheduleMode.NIGHTLY, ScheduleMode.WEEKLY):
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=str(minute),
            hour=str(hour),
            day_of_week="*" if mode == ScheduleMode.NIGHTLY else str(weekday),
            day_of_month="*",
            month_of_year="*",
            timezone=timezone.get_default_timezone_name(),
        )
        fields = {"crontab": crontab, "interval": None, "enabled": True}
        if task is None:
            PeriodicTask.objects.create(
                name=f"ddi: scheduled retrain of project {project.pk} ({project.name})"[:200],
                task=SCHEDULED_RETRAIN_TASK,
                args=json.dumps([project.pk]),
                **fields,
            )
        else:
            for name, value in fields.items():
                setattr(task, name, value)
            task.save()
    elif task is not None and task.enabled:
        task.enabled = False
        task.save()
    if mode == ScheduleMode.REVIEWS and not PeriodicTask.objects.filter(task=POLICY_TASK).exists():
        # The review count is checked by beat's policy task; make sure it exists.
        setup_default_schedules()
    return get_project_schedule(project=project)
