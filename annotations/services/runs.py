"""Starting, claiming, finishing and cancelling long jobs (Run rows).

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
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from annotations.exceptions import InvalidRunParams, NoActiveModelVersion, RunNotCancellable
from annotations.models import ModelVersion, Project, Run, RunChunk
from annotations.services.dispatch import send_chunk, send_run

logger = logging.getLogger(__name__)


class RetryLater(Exception):
    """The job cannot proceed yet (lock or lease held elsewhere); retry after ``seconds``."""

    def __init__(self, message: str, *, seconds: float):
        super().__init__(message)
        self.seconds = seconds


TRAINING_KINDS = (Run.Kind.TRAIN, Run.Kind.RETRAIN)

# name -> (type, check, message). Unknown keys are refused: a typo must not silently do nothing.
_PARAM_RULES: dict[str, tuple[type | tuple[type, ...], Any, str]] = {
    # A name from settings.DDI_BACKBONES only: a free string let any user probe the server's
    # file system through the "not found" errors.
    "backbone": (str, lambda v: v in allowed_backbones(), "a backbone from DDI_BACKBONES"),
    "epochs": (int, lambda v: 1 <= v <= 1000, "an integer from 1 to 1000"),
    "learning_rate": ((int, float), lambda v: 0 < v < 1, "a number between 0 and 1"),
    "lora_r": (int, lambda v: 1 <= v <= 256, "an integer from 1 to 256"),
    # Free-text corpora (DDI-2013) need more than the DrugBank default of 64 tokens.
    "max_length": (int, lambda v: 8 <= v <= 512, "an integer from 8 to 512"),
    "include_pseudo_labels_above": (
        (int, float, type(None)),
        lambda v: v is None or 0 <= v <= 1,
        "a confidence between 0 and 1 (or empty)",
    ),
    "force_promote": (bool, lambda v: True, "true or false"),
}


def allowed_backbones() -> list[str]:
    """The backbone names runs may ask for (settings.DDI_BACKBONES, the default always in)."""
    return list(dict.fromkeys([settings.DDI_BACKBONE, *settings.DDI_BACKBONES]))


def validate_params(params: dict | None) -> dict:
    """The params dict checked against the known keys; raises InvalidRunParams."""
    params = dict(params or {})
    problems = []
    for key, value in params.items():
        rule = _PARAM_RULES.get(key)
        if rule is None:
            problems.append(f"unknown parameter {key!r} (known: {', '.join(sorted(_PARAM_RULES))})")
            continue
        kind, check, expected = rule
        # bool is an int in Python; epochs=True is a mistake, not 1 epoch.
        is_bool_for_number = isinstance(value, bool) and kind is not bool
        if is_bool_for_number or not isinstance(value, kind) or not check(value):
            if key == "backbone":
                # Neutral: says nothing about the server beyond the configured names.
                problems.append(f"unknown backbone; use one of: {', '.join(allowed_backbones())}")
                continue
            problems.append(f"{key} must be {expected}, got {value!r}")
    if problems:
        raise InvalidRunParams("; ".join(problems))
    return params


def worker_identity() -> str:
    """A lease owner name unique to this process and call: host:pid:random."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# --- starting -----------------------------------------------------------------------------------


def start_train_run(
    *,
    project: Project,
    user=None,
    params: dict | None = None,
    idempotency_key: str | None = None,
    enqueue: bool = True,
) -> Run:
    """Create a queued training run and send it to the training queue after commit.

    ``enqueue=False`` leaves the sending to the caller (``manage.py train --inline``).
    Safe to run twice with the same idempotency_key: the second call returns the first run.
    """
    return _start_run(
        project=project,
        kind=Run.Kind.TRAIN,
        user=user,
        params=params,
        key=idempotency_key,
        enqueue=enqueue,
    )


def start_retrain_run(
    *,
    project: Project,
    user=None,
    params: dict | None = None,
    idempotency_key: str | None = None,
    enqueue: bool = True,
) -> Run:
    """Create a queued retrain run (train, then pseudo-label with the new version if promoted).

    Safe to run twice with the same idempotency_key.
    """
    return _start_run(
        project=project,
        kind=Run.Kind.RETRAIN,
        user=user,
        params=params,
        key=idempotency_key,
        enqueue=enqueue,
    )


def start_pseudolabel_run(
    *,
    project: Project,
    model_version: ModelVersion | None = None,
    user=None,
    params: dict | None = None,
    parent: Run | None = None,
    enqueue: bool = True,
) -> Run:
    """Create a queued pseudo-labeling run for a model version (default: the active one).

    Safe to run twice: while a run for that version is queued or running, the existing run is
    returned (a partial unique constraint guarantees one active run per version).
    """
    if model_version is None:
        model_version = ModelVersion.objects.active_for(project)
        if model_version is None:
            raise NoActiveModelVersion(
                f"project {project.name!r} has no active model version yet: train one first"
            )
    if model_version.project_id != project.pk:
        raise InvalidRunParams(f"model version {model_version} belongs to another project")
    if model_version.status != ModelVersion.Status.READY:
        raise InvalidRunParams(
            f"model version {model_version} is {model_version.status}, not ready"
        )
    existing = _active_pseudolabel_run(model_version)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            run = Run.objects.create(
                project=project,
                kind=Run.Kind.PSEUDOLABEL,
                model_version=model_version,
                parent=parent,
                params=dict(params or {}),
                created_by=user,
                heartbeat_at=timezone.now(),
                stage="queued",
            )
    except IntegrityError:
        # Lost the race against a concurrent start for the same version.
        existing = _active_pseudolabel_run(model_version)
        if existing is None:
            raise
        return existing
    if enqueue:
        transaction.on_commit(lambda: send_run(run.pk))
    return run


def _active_pseudolabel_run(model_version: ModelVersion) -> Run | None:
    return Run.objects.filter(
        kind=Run.Kind.PSEUDOLABEL, model_version=model_version, state__in=Run.ACTIVE_STATES
    ).first()


def _start_run(
    *, project: Project, kind: str, user, params: dict | None, key: str | None, enqueue: bool
) -> Run:
    params = validate_params(params)
    if key is not None:
        existing = Run.objects.filter(idempotency_key=key).first()
        if existing is not None:
            return existing
    try:
        with transaction.atomic():
            run = Run.objects.create(
                project=project,
                kind=kind,
                params=params,
                created_by=user,
                idempotency_key=key,
                heartbeat_at=timezone.now(),
                stage="queued",
            )
    except IntegrityError:
        existing = Run.objects.filter(idempotency_key=key).first() if key else None
        if existing is None:
            raise
        return existing
    if enqueue:
        transaction.on_commit(lambda: send_run(run.pk))
    return run


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


def requeue_stale_runs() -> dict[str, int]:
    """Re-send what a lost message or a dead worker left behind; finish runs whose chunks are done.

    - queued runs untouched for DDI_REQUEUE_QUEUED_AFTER_S (e.g. the broker was down at enqueue),
    - running runs whose heartbeat is older than DDI_STALE_AFTER_S (the worker died),
    - chunks whose lease expired (handed back as pending), and pending chunks of a running
      pseudo-labeling run that made no progress for DDI_REQUEUE_QUEUED_AFTER_S.
    Safe to run twice and from two beats: claims make duplicate messages harmless.
    """
    now = timezone.now()
    queued_before = now - timedelta(seconds=settings.DDI_REQUEUE_QUEUED_AFTER_S)
    stale_before = now - timedelta(seconds=settings.DDI_STALE_AFTER_S)
    counts = {"runs": 0, "chunks": 0, "finished": 0, "cancelled": 0}

    for run_id in Run.objects.filter(
        state__in=Run.ACTIVE_STATES, cancel_requested=True, heartbeat_at__lt=stale_before
    ).values_list("pk", flat=True):
        counts["cancelled"] += finish_run(run_id=run_id, state=Run.State.CANCELLED)

    for run_id in _finished_pseudolabel_runs():
        counts["finished"] += complete_pseudolabel_run_if_done(run_id=run_id)

    # A planned pseudo-labeling run lives on in its chunks, and a retrain waiting for its child
    # pseudo-labeling run does not beat: neither is stale as a whole.
    has_chunks = Exists(RunChunk.objects.filter(run=OuterRef("pk")))
    has_active_child = Exists(
        Run.objects.filter(parent=OuterRef("pk"), state__in=Run.ACTIVE_STATES)
    )
    stale_runs = (
        Run.objects.filter(
            Q(state=Run.State.QUEUED, heartbeat_at__lt=queued_before)
            | Q(state=Run.State.QUEUED, heartbeat_at__isnull=True)
            | Q(state=Run.State.RUNNING, heartbeat_at__lt=stale_before)
        )
        .exclude(Q(state=Run.State.RUNNING) & has_chunks)
        .exclude(has_active_child)
    )
    for run_id in stale_runs.values_list("pk", flat=True):
        # Touch first so the next watchdog pass does not send it again right away.
        Run.objects.filter(pk=run_id, state=Run.State.QUEUED).update(heartbeat_at=now)
        counts["runs"] += send_run(run_id)

    # A chunk whose lease expired lost its worker: hand it back as pending. Pending chunks are
    # normally still in the queue; they are re-sent only when their run made no progress for a
    # while (messages lost with a broker restart), so a long queue is not flooded with copies.
    expired = RunChunk.objects.filter(
        run__state=Run.State.RUNNING, state=RunChunk.State.RUNNING, lease_expires_at__lt=now
    )
    expired_ids = list(expired.values_list("pk", flat=True))
    expired.filter(pk__in=expired_ids).update(
        state=RunChunk.State.PENDING, lease_owner="", lease_expires_at=None, updated_at=now
    )
    # A chunk handed back just now is re-sent in the same pass when its run is stalled: its
    # message may be gone for good (acked by a pool process that was killed, with
    # reject_on_worker_lost off), and waiting for another watchdog interval helps nobody.
    chunks = RunChunk.objects.filter(
        Q(run__heartbeat_at__lt=queued_before) | Q(run__heartbeat_at__isnull=True),
        Q(updated_at__lt=queued_before) | Q(pk__in=expired_ids),
        run__state=Run.State.RUNNING,
        state=RunChunk.State.PENDING,
    )
    for chunk_id in chunks.values_list("pk", flat=True):
        RunChunk.objects.filter(pk=chunk_id, state=RunChunk.State.PENDING).update(updated_at=now)
        counts["chunks"] += send_chunk(chunk_id)
    if any(counts.values()):
        logger.info("watchdog: %s", counts)
    return counts


def _finished_pseudolabel_runs():
    unfinished = RunChunk.objects.filter(run=OuterRef("pk")).exclude(state=RunChunk.State.DONE)
    return (
        Run.objects.filter(kind=Run.Kind.PSEUDOLABEL, state=Run.State.RUNNING)
        .filter(Exists(RunChunk.objects.filter(run=OuterRef("pk"))))
        .filter(~Exists(unfinished))
        .values_list("pk", flat=True)
    )


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
