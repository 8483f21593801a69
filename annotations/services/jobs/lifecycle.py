"""Claiming, finishing and cancelling long jobs (Run rows); starting is in starting.py.

The Run row is the single source of truth for a job: the UI polls it, workers claim it with a
conditional UPDATE (so a duplicate delivery is harmless), and the watchdog re-sends what a lost
message or a dead worker left behind. Messages carry ids only and are sent after commit.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from annotations.exceptions import RunNotCancellable
from annotations.models import Run, RunChunk

logger = logging.getLogger(__name__)


class RetryLater(Exception):
    """The job cannot proceed yet (lock or lease held elsewhere); retry after ``seconds``."""

    def __init__(self, message: str, *, seconds: float):
        super().__init__(message)
        self.seconds = seconds


TRAINING_KINDS = (Run.Kind.TRAIN, Run.Kind.RETRAIN)


def worker_identity() -> str:
    """A lease owner name unique to this process and call: host:pid:random."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# --- starting -----------------------------------------------------------------------------------


# --- claiming and finishing (used by workers) ----------------------------------------------------


def claim_run(*, run_id: int, owner: str, kinds: tuple[str, ...]) -> Run | None:
    """Take a queued run (or a running one whose worker stopped beating) for this worker.

    Returns the claimed run, or None when another worker holds it or it already ended. A run
    claimed more than DDI_MAX_ATTEMPTS times is failed instead (poison message guard).
    Safe to run twice: the conditional UPDATE lets exactly one caller win.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.DDI_STALE_AFTER_S)
    claimable = Q(state=Run.State.QUEUED) | Q(state=Run.State.RUNNING, heartbeat_at__lt=stale)
    won = (
        Run.objects.filter(claimable, pk=run_id, kind__in=kinds)
        .filter(cancel_requested=False)
        .update(
            state=Run.State.RUNNING,
            lease_owner=owner,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            started_at=now,
            error="",
        )
    )
    if not won:
        _cancel_if_requested(run_id)
        return None
    run = Run.objects.select_related("project", "model_version").get(pk=run_id)
    if run.attempts > settings.DDI_MAX_ATTEMPTS:
        finish_run(
            run_id=run_id,
            state=Run.State.FAILED,
            error=(
                f"gave up after {run.attempts - 1} attempts: the worker kept dying or the "
                "job kept failing on this run (see the worker log)"
            ),
        )
        return None
    return run


def _cancel_if_requested(run_id: int) -> None:
    """A queued or dead run whose cancellation was asked for ends as cancelled."""
    stale = timezone.now() - timedelta(seconds=settings.DDI_STALE_AFTER_S)
    Run.objects.filter(
        Q(state=Run.State.QUEUED) | Q(state=Run.State.RUNNING, heartbeat_at__lt=stale),
        pk=run_id,
        cancel_requested=True,
    ).update(state=Run.State.CANCELLED, finished_at=timezone.now(), stage="cancelled")


def finish_run(
    *, run_id: int, state: str, error: str = "", result: dict | None = None, owner: str = ""
) -> bool:
    """Move a running (or queued) run to a final state; returns whether this call did it.

    With ``owner`` only the lease holder may finish it. A child pseudo-labeling run of a retrain
    passes its end state on to the parent. Safe to run twice: a second call changes nothing.
    """
    fields: dict[str, Any] = {"state": state, "finished_at": timezone.now(), "stage": state}
    if error:
        fields["error"] = error[:4000]
    if result is not None:
        fields["result"] = result
    rows = Run.objects.filter(pk=run_id, state__in=Run.ACTIVE_STATES)
    if owner:
        rows = rows.filter(lease_owner=owner)
    if not rows.update(**fields):
        return False
    run = Run.objects.only("parent_id", "kind").get(pk=run_id)
    if run.parent_id:
        parent_error = f"pseudo-labeling run {run_id} {state}: {error}" if error else ""
        Run.objects.filter(pk=run.parent_id, state__in=Run.ACTIVE_STATES).update(
            state=state,
            finished_at=timezone.now(),
            stage=state,
            error=parent_error[:4000],
        )
    return True


# --- cancelling ---------------------------------------------------------------------------------


def cancel_run(*, run: Run, user=None) -> Run:
    """Cancel a run: a queued one ends at once, a running one stops at its next checkpoint.

    Raises RunNotCancellable when it already ended. Child runs are cancelled too.
    Safe to run twice.
    """
    run.refresh_from_db()
    if not run.is_active:
        raise RunNotCancellable(f"run {run.pk} already ended ({run.state})")
    ids = [run.pk, *run.children.filter(state__in=Run.ACTIVE_STATES).values_list("pk", flat=True)]
    with transaction.atomic():
        Run.objects.filter(pk__in=ids, state__in=Run.ACTIVE_STATES).update(cancel_requested=True)
        Run.objects.filter(pk__in=ids, state=Run.State.QUEUED).update(
            state=Run.State.CANCELLED, finished_at=timezone.now(), stage="cancelled"
        )
    logger.info("run %s cancellation requested by %s", run.pk, getattr(user, "username", None))
    run.refresh_from_db()
    return run


# --- the watchdog -------------------------------------------------------------------------------


def complete_pseudolabel_run_if_done(*, run_id: int) -> bool:
    """Mark a pseudo-labeling run succeeded once every chunk is done; True if this call did it.

    Runs in its own transaction after the chunk's commit, so of two chunks finishing at once
    at least the later one sees both done; the state condition lets only one of them win.
    """
    unfinished = RunChunk.objects.filter(run=OuterRef("pk")).exclude(state=RunChunk.State.DONE)
    if (
        not Run.objects.filter(pk=run_id, state=Run.State.RUNNING)
        .filter(~Exists(unfinished))
        .exists()
    ):
        return False
    run = Run.objects.get(pk=run_id)
    result = {
        "model_version": run.model_version_id,
        "predictions_written": run.progress_done,
        "chunks": run.chunks.count(),
    }
    return finish_run(run_id=run_id, state=Run.State.SUCCEEDED, result=result)


def result_of(run_id: int) -> dict:
    """A copy of the run's result dict (empty when it has none yet)."""
    return dict(Run.objects.values_list("result", flat=True).get(pk=run_id) or {})
