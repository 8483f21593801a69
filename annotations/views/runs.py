"""Training runs from the browser (Admin only): start, watch progress, see the result, cancel."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotations.exceptions import DomainError
from annotations.forms import RunStartForm
from annotations.models import Run
from annotations.roles import Role
from annotations.selectors.projects import list_visible_projects
from annotations.selectors.stats import list_model_versions
from annotations.services.jobs import lifecycle, starting
from annotations.services.jobs.workers import describe_missing_consumer
from annotations.views.access import role_required
from annotations.views.common import get_visible_project, page_context


def _visible_run(request: HttpRequest, pk: int) -> Run:
    return get_object_or_404(
        Run.objects.select_related(
            "project", "model_version", "created_by", "parent__created_by"
        ).filter(project__in=list_visible_projects(request.user)),
        pk=pk,
    )


# What the run page calls each metric; a key not listed is shown with spaces for underscores.
METRIC_NAMES = {
    "accuracy": "Accuracy (out of fold: each label predicted by a member that never saw it)",
    "macro_f1": "Macro-F1 (out of fold)",
    "ece": "Calibration error of the served confidence (out of fold)",
    "ece_softmax": "Calibration error of the plain softmax (out of fold)",
    "folds": "Committee members (cross-fitted)",
    "cross_fit_note": "Cross-fitting note",
    "direction_probe": "Direction probe (increase/decrease twins)",
    "n_train": "Labeled examples",
    "n_distinct_texts": "Distinct labeled texts",
    "epochs_run": "Epochs run (all members)",
    "evaluated_on": "Score measured on",
    "device": "Device",
    "train_seconds": "Training time (s)",
}


def _metric_rows(run: Run) -> list[tuple[str, str]]:
    """The scalar metrics of the run's model version in human words, formatted for a table."""
    metrics = run.model_version.metrics if run.model_version else {}
    rows = []
    for key, value in metrics.items():
        if isinstance(value, (dict, list)):
            continue
        if isinstance(value, bool):
            shown = "yes" if value else "no"
        else:
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        rows.append((METRIC_NAMES.get(key, key.replace("_", " ").capitalize()), shown))
    return rows


def _status_context(run: Run) -> dict:
    return {
        "run": run,
        "metric_rows": _metric_rows(run),
        "no_worker": describe_missing_consumer(run=run),
    }


def _list_context(request: HttpRequest, project, form: RunStartForm) -> dict:
    runs = list(
        Run.objects.filter(project=project).select_related(
            "model_version", "created_by", "parent__created_by"
        )[:30]
    )
    queued = [run for run in runs if run.state == Run.State.QUEUED]
    return page_context(
        request,
        project,
        "runs",
        project=project,
        form=form,
        runs=runs,
        versions=list_model_versions(project=project),
        no_worker=describe_missing_consumer(run=queued[-1]) if queued else "",
    )


@require_GET
@role_required(Role.ADMIN)
def run_list(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_visible_project(request, project_pk)
    return render(request, "annotations/runs.html", _list_context(request, project, RunStartForm()))


@require_POST
@role_required(Role.ADMIN)
def run_start(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_visible_project(request, project_pk)
    form = RunStartForm(request.POST)
    if not form.is_valid():
        return render(
            request, "annotations/runs.html", _list_context(request, project, form), status=422
        )
    try:
        run = starting.start_run(
            form.cleaned_data["kind"], form.params(), project=project, user=request.user
        )
    except DomainError as exc:
        form.add_error(None, str(exc))
        return render(
            request, "annotations/runs.html", _list_context(request, project, form), status=422
        )
    messages.success(request, f"Started {run.get_kind_display()} run {run.pk}.")
    return redirect("annotations:run_detail", run.pk)


@require_GET
@role_required(Role.ADMIN)
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _visible_run(request, pk)
    return render(
        request,
        "annotations/run_detail.html",
        page_context(request, run.project, "runs", **_status_context(run)),
    )


@require_GET
@role_required(Role.ADMIN)
def run_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The progress/result block of one run, polled every second while the run is active."""
    run = _visible_run(request, pk)
    return render(request, "annotations/partials/run_status.html", _status_context(run))


@require_POST
@role_required(Role.ADMIN)
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = _visible_run(request, pk)
    try:
        run = lifecycle.cancel_run(run=run, user=request.user)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"Cancellation of run {run.pk} requested.")
    if request.htmx:
        return render(request, "annotations/partials/run_status.html", _status_context(run))
    return redirect("annotations:run_detail", run.pk)
