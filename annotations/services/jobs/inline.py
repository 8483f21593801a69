"""Running a job in the current process, through the same functions the Celery tasks call.

For a machine without a worker (`manage.py train --inline`) and for benchmarks. The web app
never uses this: a request must not block on training.
"""

from __future__ import annotations

from pathlib import Path

from annotations.models import Run
from annotations.services.jobs.pseudolabel import run_pseudolabel_inline
from annotations.services.jobs.training import run_training_job


def run_job_inline(*, run_id: int, artifacts_dir: Path | None = None) -> Run:
    """Execute a queued run (and a retrain's pseudo-labeling child) here; returns it ended.

    A trained version's folder goes under ``artifacts_dir`` (default settings.DDI_ARTIFACTS_DIR).

    Raises RetryLater when another training of the project is running. Safe to run twice.
    """
    run = Run.objects.get(pk=run_id)
    if run.kind == Run.Kind.PSEUDOLABEL:
        return run_pseudolabel_inline(run_id=run_id)
    run = run_training_job(run_id=run_id, enqueue=False, artifacts_dir=artifacts_dir)
    child = run.children.filter(state__in=Run.ACTIVE_STATES).first()
    if child is not None:
        run_pseudolabel_inline(run_id=child.pk)
    return Run.objects.get(pk=run_id)
