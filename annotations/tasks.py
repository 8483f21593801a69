"""Celery tasks: thin, named, id arguments only; the work lives in annotations/services/.

Every task runs with acks_late and reject_on_worker_lost (settings), so a killed worker's message
is delivered again; the services make a second delivery harmless (conditional claims, leases,
upserts) and cap attempts in the database. Only transient errors (database connection, broker)
are retried here, with exponential backoff; data errors end the Run as failed with a message.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init
from django.conf import settings
from django.db import DatabaseError
from kombu.exceptions import OperationalError as BrokerError

from annotations.services import ml
from annotations.services.jobs import lifecycle, pseudolabel, schedules, training, watchdog

logger = logging.getLogger(__name__)

# SoftTimeLimitExceeded: the chunk hung (e.g. its database backend froze); it rolled back.
TRANSIENT_ERRORS = (DatabaseError, BrokerError, ConnectionError, SoftTimeLimitExceeded)
_MAX_TRANSIENT_RETRIES = 8


@worker_init.connect
def _preload_model_code(**_) -> None:
    """Import torch/transformers once in the worker's main process, before the pool forks.

    A replaced pool process (after a crash or max-tasks-per-child) then starts in milliseconds.
    """
    ml.preload()


def _backoff(retries: int) -> int:
    """2, 4, 8 ... 120 seconds: always far below the broker's visibility timeout."""
    return min(2 ** (retries + 1), 120)


@shared_task(bind=True, name="annotations.train_model", max_retries=None)
def train_model(self, run_id: int) -> None:
    """Train a model version for a queued train run (queue "training"). Safe to deliver twice."""
    _run(self, training.run_training_job, run_id=run_id)


@shared_task(bind=True, name="annotations.retrain", max_retries=None)
def retrain(self, run_id: int) -> None:
    """Train, then pseudo-label with the new version if promoted (queue "training")."""
    _run(self, training.run_training_job, run_id=run_id)


@shared_task(bind=True, name="annotations.pseudolabel_run", max_retries=None)
def pseudolabel_run(self, run_id: int) -> None:
    """Plan a pseudo-labeling run into chunks and fan one chunk task out per chunk."""
    _run(self, pseudolabel.plan_pseudolabel_run, run_id=run_id)


@shared_task(
    bind=True,
    name="annotations.pseudolabel_chunk",
    max_retries=None,
    soft_time_limit=settings.DDI_CHUNK_SOFT_TIME_LIMIT_S,
    time_limit=settings.DDI_CHUNK_SOFT_TIME_LIMIT_S + 30,
)
def pseudolabel_chunk(self, chunk_id: int) -> None:
    """Predict one chunk of interactions and commit rows + cursor together (queue "inference")."""
    _run(self, pseudolabel.process_chunk, chunk_id=chunk_id)


@shared_task(name="annotations.requeue_stale_runs")
def requeue_stale_runs() -> None:
    """Watchdog fired by beat every minute: re-send lost or abandoned runs and chunks."""
    watchdog.requeue_stale_runs()


@shared_task(name="annotations.check_retrain_policies")
def check_retrain_policies() -> None:
    """Fired by beat: start a retrain where a RetrainPolicy's review threshold is reached."""
    schedules.check_retrain_policies()


@shared_task(name="annotations.scheduled_retrain")
def scheduled_retrain(project_id: int, window_minutes: int = 60) -> None:
    """Fired by an admin's PeriodicTask (e.g. nightly): one retrain run per schedule window."""
    schedules.trigger_scheduled_retrain(project_id=project_id, window_minutes=window_minutes)


def _run(task, job, **ids) -> None:
    """Call a job; retry on RetryLater (lock or lease held) and on transient errors only."""
    try:
        job(**ids)
    except lifecycle.RetryLater as wait:
        logger.info("%s %s: %s; retrying in %.0fs", task.name, ids, wait, wait.seconds)
        raise task.retry(countdown=wait.seconds, max_retries=None) from None
    except TRANSIENT_ERRORS as error:
        if task.request.retries >= _MAX_TRANSIENT_RETRIES:
            logger.error("%s %s: giving up after transient errors: %s", task.name, ids, error)
            raise
        logger.warning("%s %s: transient error, will retry: %s", task.name, ids, error)
        raise task.retry(
            exc=error, countdown=_backoff(task.request.retries), max_retries=None
        ) from None
