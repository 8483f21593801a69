"""Training jobs: gather labels, fine-tune with modeling/, store a ModelVersion, decide promotion.

Single flight per project: a PostgreSQL advisory lock (session level) is held for the whole
training, so two workers, two beats or a double "run now" never train one project at once; on
SQLite (one embedded worker) the conditional claim plus a "no other live training" check do it.
Training checkpoints every DDI_TRAIN_CHECKPOINT_EVERY steps, so a redelivered job resumes.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from annotations.exceptions import DomainError, NothingToTrain
from annotations.models import (
    ModelVersion,
    Project,
    Run,
)
from annotations.services.jobs.lifecycle import (
    TRAINING_KINDS,
    RetryLater,
    claim_run,
    finish_run,
    result_of,
    worker_identity,
)
from annotations.services.jobs.params import build_train_config
from annotations.services.jobs.promotion import decide_promotion
from annotations.services.jobs.starting import start_pseudolabel_run
from annotations.services.jobs.training_data import (
    TrainingData,
    gather_training_examples,
    int8_gate_texts,
)
from annotations.services.ml import (
    data_fingerprint,
    train,
)

logger = logging.getLogger(__name__)

# First key of the two-int advisory lock: the namespace "ddi-curate training".
_LOCK_NAMESPACE = 7_314_001
_PROGRESS_EVERY_S = 0.5
_BUSY_RETRY_S = 20


class RunCancelled(Exception):
    """Raised from the progress callback when someone cancelled the run."""


@contextmanager
def training_lock(project_id: int) -> Iterator[bool]:
    """Yield whether this process may train the project now (released on exit).

    PostgreSQL: pg_try_advisory_lock, released by pg_advisory_unlock or when the connection
    dies with the worker. Elsewhere: no other training run of the project has a fresh heartbeat.
    """
    if connection.vendor != "postgresql":
        fresh = timezone.now() - timedelta(seconds=settings.DDI_STALE_AFTER_S)
        busy = Run.objects.filter(
            project_id=project_id,
            kind__in=TRAINING_KINDS,
            state=Run.State.RUNNING,
            heartbeat_at__gte=fresh,
            children__isnull=True,
        ).exists()
        yield not busy
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_NAMESPACE, project_id])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_advisory_unlock(%s, %s)", [_LOCK_NAMESPACE, project_id]
                    )
            except DatabaseError:
                logger.warning("advisory unlock failed; the lock went with the connection")


# --- the jobs -----------------------------------------------------------------------------------


def run_training_job(
    *, run_id: int, enqueue: bool = True, artifacts_dir: Path | None = None
) -> Run | None:
    """Execute a train or retrain run end to end (the body of both Celery tasks).

    A new version's folder goes under ``artifacts_dir`` (default settings.DDI_ARTIFACTS_DIR).

    Raises RetryLater while another training of the project holds the lock; DatabaseError
    propagates (transient, the task retries). Any other error fails the run with its message.
    Safe to run twice: a claimed or finished run is skipped, a trained version is not retrained.
    """
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        logger.warning("run %s does not exist (deleted?); nothing to do", run_id)
        return None
    with training_lock(run.project_id) as acquired:
        if not acquired:
            Run.objects.filter(pk=run_id, state=Run.State.QUEUED).update(
                heartbeat_at=timezone.now(), stage="waiting for another training to finish"
            )
            raise RetryLater(f"project {run.project_id} is training already", seconds=_BUSY_RETRY_S)
        owner = worker_identity()
        run = claim_run(run_id=run_id, owner=owner, kinds=TRAINING_KINDS)
        if run is None:
            logger.info("run %s not claimable (taken, ended or cancelled)", run_id)
            return Run.objects.get(pk=run_id)
        try:
            model_version = train_for_run(run=run, artifacts_dir=artifacts_dir)
            if run.kind == Run.Kind.RETRAIN:
                _continue_with_pseudolabel(run, model_version, enqueue=enqueue)
            else:
                finish_run(run_id=run.pk, state=Run.State.SUCCEEDED, owner=owner)
        except RunCancelled:
            finish_run(run_id=run.pk, state=Run.State.CANCELLED)
        except DatabaseError:
            _requeue(run.pk, owner)
            raise
        except Exception as error:
            logger.exception("training run %s failed", run.pk)
            finish_run(run_id=run.pk, state=Run.State.FAILED, error=_readable(error))
    return Run.objects.get(pk=run_id)


def _readable(error: Exception) -> str:
    if isinstance(error, DomainError | ValueError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _requeue(run_id: int, owner: str) -> None:
    """Best effort: put a run back to queued so the retry can claim it without waiting."""
    try:
        Run.objects.filter(pk=run_id, lease_owner=owner, state=Run.State.RUNNING).update(
            state=Run.State.QUEUED, stage="retrying after a database error"
        )
    except DatabaseError:
        logger.warning("run %s: could not requeue; the watchdog picks it up", run_id)


def _continue_with_pseudolabel(run: Run, model_version: ModelVersion, *, enqueue: bool) -> None:
    """Second half of a retrain: pseudo-label with the new version when it was promoted."""
    model_version.refresh_from_db()
    if not model_version.is_active:
        finish_run(
            run_id=run.pk,
            state=Run.State.SUCCEEDED,
            result={**result_of(run.pk), "pseudolabel_run": None},
        )
        return
    with transaction.atomic():
        child = start_pseudolabel_run(
            project=run.project, model_version=model_version, parent=run, enqueue=enqueue
        )
        Run.objects.filter(pk=run.pk, state=Run.State.RUNNING).update(
            stage=f"pseudo-labeling (run {child.pk})",
            result={**result_of(run.pk), "pseudolabel_run": child.pk},
            heartbeat_at=timezone.now(),
        )


def train_for_run(*, run: Run, artifacts_dir: Path | None = None) -> ModelVersion:
    """Train a model version for a claimed run and decide its promotion.

    Side effects: writes the artifact folder, a ModelVersion row, Run progress/result.
    Resumes from the run's checkpoint; a run whose version is already ready is not retrained.
    """
    project = run.project
    params = run.params or {}
    model_version = run.model_version
    if model_version is not None and model_version.status == ModelVersion.Status.READY:
        if not model_version.promotion_decision:
            decide_promotion(run=run, model_version=model_version)
        return model_version
    data = gather_training_examples(
        project=project, include_pseudo_labels_above=params.get("include_pseudo_labels_above")
    )
    _check_trainable(data, project)
    config = build_train_config(params)
    if model_version is None:
        model_version = _new_model_version(run, config, artifacts_dir)
    out_dir = Path(model_version.artifact_path)
    checkpoint_dir = out_dir.parent / "checkpoints" / f"run-{run.pk}"
    Run.objects.filter(pk=run.pk).update(
        model_version=model_version,
        stage="preparing",
        result={"examples": data.counts, "model_version": model_version.pk},
    )
    progress = _ProgressWriter(run.pk, checkpoint_every=config.checkpoint_every_steps)
    if run.cursor:
        logger.info(
            "training run %s resumes from its checkpoint at step %s (%s)",
            run.pk,
            run.cursor,
            checkpoint_dir,
        )
    try:
        result = train(
            data.examples,
            gate_texts=lambda: int8_gate_texts(project),
            classes=list(project.label_classes),
            config=config,
            out_dir=out_dir,
            on_progress=progress,
            checkpoint_dir=checkpoint_dir,
            device=settings.DDI_DEVICE,
        )
    except RunCancelled:
        _mark_version(model_version, ModelVersion.Status.FAILED, "training cancelled")
        raise
    except Exception as error:
        _mark_version(model_version, ModelVersion.Status.FAILED, f"training failed: {error}")
        raise
    model_version.metrics = result.metrics
    model_version.data_fingerprint = data_fingerprint((e.text, e.label) for e in data.examples)
    model_version.n_train_examples = len(data.examples)
    model_version.status = ModelVersion.Status.READY
    model_version.save(update_fields=["metrics", "data_fingerprint", "n_train_examples", "status"])
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    decide_promotion(run=run, model_version=model_version)
    return model_version


def _check_trainable(data: TrainingData, project: Project) -> None:
    present = {e.label for e in data.examples}
    minimum = settings.DDI_MIN_TRAIN_EXAMPLES
    if len(data.examples) < minimum or len(present) < 2:
        raise NothingToTrain(
            f"project {project.name!r} has {len(data.examples)} usable labels covering "
            f"{len(present)} class(es); training needs at least {minimum} labels and 2 classes "
            f"(classes: {', '.join(project.label_classes)})"
        )


def _new_model_version(run: Run, config, artifacts_dir: Path | None) -> ModelVersion:
    """Next version number of the project (serialized by the training lock; retried on races)."""
    for _ in range(5):
        latest = ModelVersion.objects.filter(project=run.project).aggregate(n=Max("number"))["n"]
        number = (latest or 0) + 1
        root = Path(artifacts_dir or settings.DDI_ARTIFACTS_DIR)
        folder = root / str(run.project_id) / f"v{number}"
        try:
            with transaction.atomic():
                return ModelVersion.objects.create(
                    project=run.project,
                    number=number,
                    backbone=config.backbone,
                    artifact_path=str(folder),
                    train_config=config.to_dict(),
                    status=ModelVersion.Status.TRAINING,
                    created_by=run.created_by,
                )
        except IntegrityError:
            continue
    raise RuntimeError(f"could not allocate a model version number for {run.project}")


def _mark_version(model_version: ModelVersion, status: str, decision: str) -> None:
    ModelVersion.objects.filter(pk=model_version.pk).update(
        status=status, promotion_decision=decision
    )


class _ProgressWriter:
    """on_progress callback: throttled Run progress writes; raises RunCancelled when asked.

    Run.cursor is the step of the last checkpoint known to be on disk: modeling.train() calls
    back for step s BEFORE it saves the checkpoint of step s (when s is a multiple of K), so at
    step s the newest complete checkpoint is that of step K * floor((s - 1) / K). The cursor is
    written as soon as it moves (not throttled), so a resumed run loses at most K steps.
    """

    def __init__(self, run_id: int, *, checkpoint_every: int = 0):
        self.run_id = run_id
        self.checkpoint_every = checkpoint_every
        self.last_write = 0.0
        self.cursor: int | None = None
        self.first_step: int | None = None
        self.started = time.monotonic()

    def _checkpointed(self, step: int) -> int:
        k = self.checkpoint_every
        return ((step - 1) // k) * k if k > 0 and step > 0 else 0

    def __call__(self, progress) -> None:
        if self.first_step is None:
            self.first_step = progress.step
            logger.info("training run %s: first step %s", self.run_id, progress.step)
        self._record(progress)

    def _stage(self, progress, now: float) -> str:
        """The phase in words, with the time left at this run's own pace (resumes included)."""
        members = getattr(progress, "members", 1)
        who = f"member {progress.member} of {members}, " if members > 1 else ""
        stage = f"training {who}epoch {progress.epoch} (loss {progress.loss:.3f})"
        done = progress.step - (self.first_step or progress.step) + 1
        left = progress.total_steps - progress.step
        if done >= 5 and left > 0:
            seconds = (now - self.started) / done * left
            minutes, secs = divmod(int(seconds), 60)
            stage += (
                f", about {minutes} min {secs:02d} s left" if minutes else f", about {secs} s left"
            )
        return stage

    def _record(self, progress) -> None:
        now = time.monotonic()
        last_step = progress.step >= progress.total_steps
        cursor = self._checkpointed(progress.step)
        moved = self.cursor is not None and cursor != self.cursor
        self.cursor = cursor
        if now - self.last_write < _PROGRESS_EVERY_S and not last_step and not moved:
            return
        self.last_write = now
        Run.objects.filter(pk=self.run_id, state=Run.State.RUNNING).update(
            progress_done=progress.step,
            progress_total=progress.total_steps,
            cursor=cursor,
            stage=self._stage(progress, now),
            heartbeat_at=timezone.now(),
        )
        if Run.objects.filter(pk=self.run_id, cancel_requested=True).exists():
            raise RunCancelled
