"""Resumable, fanned-out pseudo-labeling: one Prediction per (interaction, model version).

A run is planned into RunChunk rows (id ranges of interactions still lacking a prediction from
the version); each chunk is a short Celery task that any worker may take. Inside a chunk, every
sub-batch commits its Prediction rows, the chunk cursor, the chunk lease and the run's progress
in ONE transaction, so a worker killed at any instant loses at most one uncommitted batch and a
redelivered chunk continues from the committed cursor. Rows go in by COPY; when any of them
exists already (a racing copy of the chunk, another writer) the batch falls back to ON CONFLICT
DO NOTHING, so even two workers racing on the same chunk cannot duplicate a prediction. The last
chunk to finish marks the run succeeded (no result backend, no chord).

Speed (bench/pseudolabel.py): each worker keeps the finished values of every distinct blinded
text it has scored (ScoreCache), so inference runs once per pattern, not once per row, and the
per-row cost is one string join into the COPY stream; the database's index maintenance is what
remains.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from annotations.models import Interaction, ModelVersion, Prediction, Run, RunChunk
from annotations.services.jobs.dispatch import send_chunk
from annotations.services.jobs.lifecycle import (
    RetryLater,
    claim_run,
    complete_pseudolabel_run_if_done,
    finish_run,
    worker_identity,
)
from annotations.services.jobs.writer import score_cache, write_predictions
from annotations.services.ml import get_predictor

if TYPE_CHECKING:
    from annotations.services.ml import Predictor

logger = logging.getLogger(__name__)


class RunStopped(Exception):
    """The run left the running state while this chunk worked; the batch is rolled back."""


class LeaseLost(Exception):
    """Another worker took this chunk over (our lease expired); the batch is rolled back."""


def missing_interactions(model_version: ModelVersion):
    """Interactions of the version's project that have no prediction from that version."""
    has_prediction = Prediction.objects.filter(
        interaction_id=OuterRef("pk"), model_version_id=model_version.pk
    )
    return Interaction.objects.filter(project_id=model_version.project_id).filter(
        ~Exists(has_prediction)
    )


# --- planning -----------------------------------------------------------------------------------


def plan_pseudolabel_run(*, run_id: int, enqueue: bool = True) -> list[int]:
    """Claim a queued run, split the missing interactions into chunks and send one task each.

    Returns the ids of the chunks that still need work. Safe to run twice: a run that already
    has chunks is not re-planned; its unfinished, unleased chunks are simply sent again.
    """
    run = claim_run(run_id=run_id, owner=worker_identity(), kinds=(Run.Kind.PSEUDOLABEL,))
    if run is None:
        logger.info("pseudolabel run %s not claimable (taken, ended or cancelled)", run_id)
        return []
    if run.chunks.exists():
        pending = list(
            run.chunks.filter(
                Q(state=RunChunk.State.PENDING)
                | Q(state=RunChunk.State.RUNNING, lease_expires_at__lt=timezone.now())
            ).values_list("pk", flat=True)
        )
    else:
        pending = _create_chunks(run)
    if not pending:
        complete_pseudolabel_run_if_done(run_id=run_id)
        return []
    if enqueue:
        transaction.on_commit(lambda: [send_chunk(chunk_id) for chunk_id in pending])
    return pending


def _create_chunks(run: Run) -> list[int]:
    """Chunk boundaries over the ids still missing a prediction, streamed (constant memory)."""
    size = settings.DDI_PSEUDOLABEL_CHUNK_SIZE
    ids = missing_interactions(run.model_version).order_by("pk").values_list("pk", flat=True)
    chunks: list[RunChunk] = []
    total = 0
    first = last = None
    for interaction_id in ids.iterator(chunk_size=20_000):
        if first is None:
            first = interaction_id
        last = interaction_id
        total += 1
        if total % size == 0:
            chunks.append(_chunk(run, len(chunks), first, last))
            first = None
    if first is not None:
        chunks.append(_chunk(run, len(chunks), first, last))
    with transaction.atomic():
        RunChunk.objects.bulk_create(chunks)
        Run.objects.filter(pk=run.pk).update(
            progress_total=total,
            progress_done=0,
            stage=f"predicting ({len(chunks)} chunks)",
            heartbeat_at=timezone.now(),
        )
    return list(run.chunks.values_list("pk", flat=True))


def _chunk(run: Run, index: int, first_id: int, last_id: int) -> RunChunk:
    return RunChunk(run=run, index=index, first_id=first_id, last_id=last_id, cursor=first_id - 1)


# --- one chunk ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkOutcome:
    """What one chunk task did (for logs and tests)."""

    status: str  # done | skipped | cancelled | failed
    rows_written: int = 0


def process_chunk(*, chunk_id: int, owner: str | None = None) -> ChunkOutcome:
    """Predict and store every interaction of one chunk that lacks a prediction, batch by batch.

    Raises RetryLater while another live worker holds the chunk's lease. Safe to run twice and
    concurrently: the claim, the lease check in each batch and ON CONFLICT DO NOTHING make a
    second delivery write nothing twice.
    """
    owner = owner or worker_identity()
    chunk = _claim_chunk(chunk_id, owner)
    if chunk is None:
        return ChunkOutcome("skipped")
    run = chunk.run
    if chunk.attempts > settings.DDI_MAX_ATTEMPTS:
        return _give_up(chunk)
    try:
        predictor = get_predictor(run.model_version)
        written = _predict_chunk(chunk, run, predictor, owner)
    except RunStopped:
        _release_chunk(chunk.pk, owner)
        finish_run(run_id=run.pk, state=Run.State.CANCELLED)
        return ChunkOutcome("cancelled")
    except LeaseLost:
        logger.warning("chunk %s: lease lost to another worker; stopping this copy", chunk.pk)
        return ChunkOutcome("skipped")
    except (DatabaseError, SoftTimeLimitExceeded):
        # Transient (connection lost, or the task hung past its soft time limit, e.g. on a frozen
        # database backend): the batch rolled back; let the retry claim the chunk without waiting.
        _release_chunk(chunk.pk, owner)
        raise
    except Exception as error:
        # A data or model error: retrying the same input would fail the same way.
        message = f"chunk {chunk.index} (interactions {chunk.first_id}-{chunk.last_id}): {error}"
        logger.exception("pseudolabel run %s failed in %s", run.pk, message)
        RunChunk.objects.filter(pk=chunk.pk).update(state=RunChunk.State.FAILED, error=message)
        finish_run(run_id=run.pk, state=Run.State.FAILED, error=message)
        return ChunkOutcome("failed")
    updated = RunChunk.objects.filter(
        pk=chunk.pk, lease_owner=owner, state=RunChunk.State.RUNNING
    ).update(state=RunChunk.State.DONE, lease_expires_at=None)
    if updated:
        complete_pseudolabel_run_if_done(run_id=run.pk)
    return ChunkOutcome("done", written)


def _claim_chunk(chunk_id: int, owner: str) -> RunChunk | None:
    """Conditional claim: pending, or running with an expired lease (its worker died)."""
    now = timezone.now()
    lease_until = now + timedelta(seconds=settings.DDI_CHUNK_LEASE_S)
    won = (
        RunChunk.objects.filter(pk=chunk_id, run__state=Run.State.RUNNING)
        .filter(
            Q(state=RunChunk.State.PENDING)
            | Q(state=RunChunk.State.RUNNING, lease_expires_at__lt=now)
        )
        .update(
            state=RunChunk.State.RUNNING,
            lease_owner=owner,
            lease_expires_at=lease_until,
            attempts=F("attempts") + 1,
        )
    )
    if won:
        return RunChunk.objects.select_related("run__model_version").get(pk=chunk_id)
    busy = (
        RunChunk.objects.filter(
            pk=chunk_id, state=RunChunk.State.RUNNING, run__state=Run.State.RUNNING
        )
        .values_list("lease_expires_at", flat=True)
        .first()
    )
    if busy is not None:
        # Typically the redelivery of a chunk whose pool process was killed a moment ago: wait
        # for the dead holder's lease to expire instead of dropping the message.
        wait = max((busy - now).total_seconds(), 0) + 1
        raise RetryLater(f"chunk {chunk_id} is leased until {busy:%H:%M:%S}", seconds=wait)
    logger.info("chunk %s: nothing to do (done, failed, or its run ended)", chunk_id)
    return None


def _give_up(chunk: RunChunk) -> ChunkOutcome:
    attempts = chunk.attempts - 1
    message = (
        f"chunk {chunk.index} (interactions {chunk.first_id}-{chunk.last_id}) was started "
        f"{attempts} times without finishing; giving up (DDI_MAX_ATTEMPTS="
        f"{settings.DDI_MAX_ATTEMPTS}). {chunk.error}".strip()
    )
    RunChunk.objects.filter(pk=chunk.pk).update(state=RunChunk.State.FAILED, error=message)
    finish_run(run_id=chunk.run_id, state=Run.State.FAILED, error=message)
    return ChunkOutcome("failed")


def _release_chunk(chunk_id: int, owner: str) -> None:
    """Best effort: hand the chunk back at once (the database may be unreachable right now)."""
    try:
        RunChunk.objects.filter(pk=chunk_id, lease_owner=owner).exclude(
            state=RunChunk.State.DONE
        ).update(state=RunChunk.State.PENDING, lease_owner="", lease_expires_at=None)
    except DatabaseError:
        logger.warning("chunk %s: could not release the lease; it expires by itself", chunk_id)


def _predict_chunk(chunk: RunChunk, run: Run, predictor: Predictor, owner: str) -> int:
    """The batch loop: read (keyset by id), predict, write rows + cursor in one transaction."""
    model_version = run.model_version
    scores = score_cache(predictor)
    batch_size = settings.DDI_PSEUDOLABEL_BATCH_SIZE
    cursor = chunk.cursor
    written = 0
    # Every interaction of the chunk's id range, by primary key, without an anti-join against
    # the predictions: the unique constraint is the check (see write_predictions). Why: for a
    # model version created moments ago the statistics say it has no predictions, and the
    # planner answered NOT EXISTS with a merge anti-join that sorted ALL of the version's
    # predictions for every batch (measured: 1.8 s per batch at 700k rows; 83 CPU-s of
    # PostgreSQL for a 1M-row run). Planning already limited the chunks to missing ids, so the
    # fallback for already-predicted rows is rare (a range interleaved with an earlier run).
    todo = Interaction.objects.filter(
        project_id=model_version.project_id, pk__lte=chunk.last_id
    ).order_by("pk")
    while True:
        if Run.objects.filter(pk=run.pk, cancel_requested=True).exists():
            raise RunStopped
        rows = _next_batch(todo, cursor, batch_size)
        if not rows:
            return written
        values = scores.lookup({text for _, text in rows})
        with transaction.atomic():
            _relax_commit_durability()
            now = timezone.now()
            # The lease first: it locks this chunk's row, so a second copy of the chunk (a
            # redelivery whose lease ran out) waits here and then finds the lease gone.
            if not RunChunk.objects.filter(
                pk=chunk.pk, lease_owner=owner, state=RunChunk.State.RUNNING
            ).update(
                cursor=rows[-1][0],
                rows_written=F("rows_written") + len(rows),
                lease_expires_at=now + timedelta(seconds=settings.DDI_CHUNK_LEASE_S),
            ):
                raise LeaseLost
            inserted = write_predictions(model_version.pk, rows, values)
            if inserted != len(rows):  # some rows existed already: count what was written
                RunChunk.objects.filter(pk=chunk.pk).update(
                    rows_written=F("rows_written") - (len(rows) - inserted)
                )
            # Last statement of the transaction: the run row lock is held only briefly.
            if not Run.objects.filter(pk=run.pk, state=Run.State.RUNNING).update(
                progress_done=F("progress_done") + inserted, heartbeat_at=now
            ):
                raise RunStopped
        cursor = rows[-1][0]
        written += inserted


def _next_batch(todo, cursor: int, batch_size: int) -> list[tuple[int, str]]:
    """The next (pk, blinded_text) rows after the cursor (the fault-injection tests wrap it)."""
    return list(todo.filter(pk__gt=cursor).values_list("pk", "blinded_text")[:batch_size])


def _relax_commit_durability() -> None:
    """PostgreSQL: do not wait for the WAL flush when a batch commits (asynchronous commit).

    Why this keeps the guarantees: a batch's rows and its chunk cursor are one transaction, and
    asynchronous commit never breaks atomicity or consistency, it can only lose the last few
    hundred milliseconds of commits if the *database server* crashes. Those lost batches vanish
    together with their cursor advance, so the redelivered chunk redoes exactly them. And every
    chunk ends with a synchronous commit (the DONE update in process_chunk), which flushes the
    WAL up to that point, so a chunk is durable before its message is acknowledged. A worker
    crash (the failure we expect) loses nothing: it does not touch committed transactions.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")


# --- inline execution (manage.py pseudolabel --inline, tests, bench) ------------------------------


def run_pseudolabel_inline(*, run_id: int) -> Run:
    """Plan and process every chunk of a run in this process (no broker). Safe to run twice."""
    for chunk_id in plan_pseudolabel_run(run_id=run_id, enqueue=False):
        process_chunk(chunk_id=chunk_id)
    return Run.objects.get(pk=run_id)
