"""One round and the whole simulated loop: pick, answer, retrain (+ pseudo-label), score; and the
read-only preview that rolls everything back (see the package docstring)."""

from __future__ import annotations

import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotations.exceptions import DomainError
from annotations.models import ModelVersion, Project, Run
from annotations.services.jobs.inline import run_job_inline
from annotations.services.jobs.starting import start_retrain_run
from annotations.services.ml import forget_predictors
from annotations.simulation.reference import Reference
from annotations.simulation.reviewer import (
    STRATEGIES,
    answer_items,
    get_simulated_reviewer,
    pick_items,
)
from annotations.simulation.scoring import Score, score_final_labels


@dataclass(frozen=True)
class Training:
    """What one retrain did: the version it made and whether it became active."""

    version: int | None
    promoted: bool
    decision: str
    macro_f1: float | None
    active_version: int | None
    state: str


def retrain(
    *,
    project: Project,
    user: AbstractBaseUser | None,
    params: dict,
    artifacts_dir: Path | None = None,
) -> Training:
    """Retrain through the run service and run it here (train, then pseudo-label if promoted).

    The new version's folder goes under ``artifacts_dir`` (default settings.DDI_ARTIFACTS_DIR).

    A version that is not promoted (validation macro-F1 below the active one's) leaves the
    active version and its predictions in place. Raises DomainError when the run fails.
    """
    run = start_retrain_run(project=project, user=user, params=params, enqueue=False)
    run = run_job_inline(run_id=run.pk, artifacts_dir=artifacts_dir)
    if run.state != Run.State.SUCCEEDED:
        raise DomainError(f"retrain run {run.pk} ended {run.state}: {run.error}")
    result = run.result or {}
    active = ModelVersion.objects.active_for(project)
    return Training(
        version=result.get("model_version_number"),
        promoted=bool(result.get("promoted")),
        decision=result.get("promotion_decision", ""),
        macro_f1=result.get("macro_f1"),
        active_version=active.number if active else None,
        state=run.state,
    )


# --- the loop -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundResult:
    """One round of one strategy (round 0: before any review)."""

    strategy: str
    round: int
    reviews: int  # simulated reviews so far
    skipped: int
    score: Score
    training: Training | None


def run_round(
    *,
    project: Project,
    user: AbstractBaseUser,
    strategy: str,
    per_round: int,
    reference: Reference,
    params: dict,
    rng: random.Random,
    artifacts_dir: Path | None = None,
) -> tuple[int, int, Training]:
    """Pick, answer, retrain (+ pseudo-label when promoted). Returns (reviewed, skipped, training).

    Side effects: labels, events and skips by `user`, a retrain run, a model version and (when
    promoted) its predictions. Not idempotent: every call is one more round.
    """
    items = pick_items(project=project, user=user, strategy=strategy, count=per_round, rng=rng)
    reviewed, skipped = answer_items(items=items, user=user, reference=reference)
    training = retrain(project=project, user=user, params=params, artifacts_dir=artifacts_dir)
    return reviewed, skipped, training


def simulate(
    *,
    project: Project,
    strategy: str,
    rounds: int,
    per_round: int,
    reference: Reference,
    params: dict | None = None,
    seed: int = 0,
    user: AbstractBaseUser | None = None,
    on_round: Callable[[RoundResult], None] | None = None,
    artifacts_dir: Path | None = None,
) -> list[RoundResult]:
    """Round 0 score, then `rounds` rounds of `per_round` simulated reviews each.

    Model versions go under ``artifacts_dir`` (default settings.DDI_ARTIFACTS_DIR).

    Needs an active model version (train and pseudo-label first). Writes to the database (see
    run_round); `preview_loop` wraps it in a transaction that is rolled back.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    user = user or get_simulated_reviewer()
    rng = random.Random(seed)
    results = [
        RoundResult(
            strategy, 0, 0, 0, score_final_labels(project=project, reference=reference), None
        )
    ]
    if on_round:
        on_round(results[0])
    reviews = skips = 0
    for number in range(1, rounds + 1):
        reviewed, skipped, training = run_round(
            project=project,
            user=user,
            strategy=strategy,
            per_round=per_round,
            reference=reference,
            params=dict(params or {}),
            rng=rng,
            artifacts_dir=artifacts_dir,
        )
        reviews += reviewed
        skips += skipped
        result = RoundResult(
            strategy,
            number,
            reviews,
            skips,
            score_final_labels(project=project, reference=reference),
            training,
        )
        results.append(result)
        if on_round:
            on_round(result)
    return results


def preview_loop(
    *,
    project: Project,
    strategy: str,
    rounds: int,
    per_round: int,
    reference: Reference,
    params: dict | None = None,
    seed: int = 0,
    on_round: Callable[[RoundResult], None] | None = None,
) -> list[RoundResult]:
    """`simulate` against live data without keeping anything: read-only for the database.

    Everything (the simulated reviewer account, labels, events, runs, versions, predictions)
    happens inside one transaction that is rolled back, even on success; model artifacts go to
    a temporary folder that is deleted. While it runs, the transaction holds row locks on what
    it wrote (a real reviewer saving one of the same items, or a real training run, waits until
    the preview ends; on SQLite the whole database is write-locked), so run it at a quiet time.
    """
    if ModelVersion.objects.active_for(project) is None:
        raise DomainError(
            f"project {project.name!r} has no active model version: train one before a preview"
        )
    folder = Path(tempfile.mkdtemp(prefix="ddi-loop-"))
    results: list[RoundResult] = []
    try:
        with transaction.atomic():
            results = simulate(
                project=project,
                strategy=strategy,
                rounds=rounds,
                per_round=per_round,
                reference=reference,
                params=params,
                seed=seed,
                on_round=on_round,
                artifacts_dir=folder,
            )
            transaction.set_rollback(True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        forget_predictors(folder)
    return results
