"""The watchdog: re-sends what a lost message or a dead worker left behind."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from annotations.models import Run, RunChunk
from annotations.services.jobs.dispatch import send_chunk, send_run
from annotations.services.jobs.lifecycle import complete_pseudolabel_run_if_done, finish_run

logger = logging.getLogger(__name__)


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
