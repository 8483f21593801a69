"""The project dashboard: counts, charts (data via json_script) and live run progress."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotations.roles import Role, has_role
from annotations.selectors import audit as audit_selectors
from annotations.selectors import stats
from annotations.selectors.agreement import get_agreement_report
from annotations.views.access import role_required
from annotations.views.common import get_visible_project, page_context


@require_GET
@role_required(Role.REVIEWER)
def dashboard(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_visible_project(request, project_pk)
    agreement = stats.list_review_agreement(project=project)
    charts = {
        "distribution": stats.get_class_distribution(project=project),
        "histogram": stats.get_confidence_histogram(project=project),
        "throughput": stats.get_reviewer_throughput(project=project),
        "metrics": stats.get_metrics_over_versions(project=project),
        "learning": stats.get_learning_curve(project=project, agreement=agreement),
    }
    context = page_context(
        request,
        project,
        "dashboard",
        project=project,
        counts=stats.get_dashboard_counts(project=project),
        charts=charts,
        versions=stats.list_model_versions(project=project).select_related("created_by"),
        runs=stats.list_active_runs(project=project),
        agreement=agreement,
        team=get_agreement_report(project=project),
        distribution_rows=zip(
            charts["distribution"]["classes"],
            charts["distribution"]["labels"],
            charts["distribution"]["predictions"],
            strict=True,
        ),
        show_run_links=has_role(request.user, Role.ADMIN),
        audit_summary=audit_selectors.get_audit_summary(project=project),
        rubber_stamp=[
            c for c in audit_selectors.get_rubber_stamp_checks(project=project) if c.flagged
        ]
        if has_role(request.user, Role.ADMIN)
        else None,
    )
    return render(request, "annotations/dashboard.html", context)


@require_GET
@role_required(Role.REVIEWER)
def active_runs_partial(request: HttpRequest, project_pk: int) -> HttpResponse:
    """The running-jobs box, polled every second by the dashboard."""
    project = get_visible_project(request, project_pk)
    return render(
        request,
        "annotations/partials/run_rows.html",
        {
            "runs": stats.list_active_runs(project=project),
            "project": project,
            "show_run_links": has_role(request.user, Role.ADMIN),
        },
    )
