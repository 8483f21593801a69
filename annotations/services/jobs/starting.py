"""Starting runs: a queued Run row, sent to its queue after commit (safe to call twice)."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from annotations.exceptions import InvalidRunParams, NoActiveModelVersion
from annotations.models import ModelVersion, Project, Run
from annotations.services.jobs.dispatch import send_run
from annotations.services.jobs.params import validate_params


def start_run(
    kind: str,
    params: dict | None = None,
    *,
    project: Project,
    user=None,
    idempotency_key: str | None = None,
    model_version: ModelVersion | None = None,
    enqueue: bool = True,
) -> Run:
    """Start a run of any kind: the one entry point of the Runs page, the API and the commands.

    The params are checked against RUN_PARAMS (InvalidRunParams). A pseudo-labeling run is for
    ``model_version`` (default: the active one) and returns the version's run in flight, if any
    (so the idempotency key is not needed there); train and retrain runs honour
    ``idempotency_key``.
    """
    if kind == Run.Kind.PSEUDOLABEL:
        return start_pseudolabel_run(
            project=project,
            model_version=model_version,
            user=user,
            params=validate_params(params),
            enqueue=enqueue,
        )
    if kind not in (Run.Kind.TRAIN, Run.Kind.RETRAIN):
        raise InvalidRunParams(f"unknown run kind {kind!r}")
    return _start_run(
        project=project, kind=kind, user=user, params=params, key=idempotency_key, enqueue=enqueue
    )


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
