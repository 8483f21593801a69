"""Read queries about runs (jobs) for the UI, the API and the management commands."""

from __future__ import annotations

from django.db.models import QuerySet

from annotations.models import Project, Run, RunChunk


def list_runs(*, project: Project, kind: str | None = None) -> QuerySet[Run]:
    """A project's runs, newest first, optionally of one kind."""
    runs = Run.objects.filter(project=project).select_related("model_version", "created_by")
    if kind is not None:
        runs = runs.filter(kind=kind)
    return runs.order_by("-id")


def list_active_runs(*, project: Project) -> QuerySet[Run]:
    """Queued or running runs of a project (what the dashboard shows as in progress)."""
    return list_runs(project=project).filter(state__in=Run.ACTIVE_STATES)


def get_run_status(*, run_id: int) -> dict | None:
    """The fields a poller needs, in one query; None when the run does not exist."""
    return (
        Run.objects.filter(pk=run_id)
        .values(
            "id",
            "kind",
            "state",
            "stage",
            "progress_done",
            "progress_total",
            "error",
            "result",
            "attempts",
            "parent_id",
            "model_version_id",
        )
        .first()
    )


def chunk_summary(*, run: Run) -> dict[str, int]:
    """Number of chunks per state (pending, running, done, failed) of a pseudo-labeling run."""
    counts = dict.fromkeys(RunChunk.State.values, 0)
    for state in run.chunks.values_list("state", flat=True):
        counts[state] += 1
    return counts
