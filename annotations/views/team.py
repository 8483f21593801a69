"""Team review pages for curators: settings, adjudication queue, flag inbox, consistency checks.

Each POST validates a form, calls one service and redirects (conflicts: 409 with the page and
the service's message). The adjudication page shows the answers side by side and the model's
answer only after the decision.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotations.exceptions import DomainError, EditConflict
from annotations.forms import (
    DecisionForm,
    GuidelineForm,
    ReturnToReviewForm,
    SecondOpinionSettingsForm,
)
from annotations.models import Adjudication, Label, LabelEvent
from annotations.roles import Role
from annotations.selectors.consistency import KINDS, get_consistency_report
from annotations.selectors.projects import list_visible_projects
from annotations.selectors.team import (
    get_adjudication_item,
    list_adjudications,
    list_flagged_labels,
)
from annotations.services import flags, labels, second_opinions
from annotations.services.adjudication import decide_adjudication
from annotations.views.access import role_required
from annotations.views.common import get_visible_project, page_context, visible_interactions


def _form_errors(form) -> str:
    return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())


@require_http_methods(["GET", "POST"])
@role_required(Role.CURATOR)
def team_settings(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_visible_project(request, project_pk)
    initial = {
        "percent": round(project.second_opinion_rate * 100, 2),
        "below_confidence": project.second_opinion_below_confidence,
    }
    form = SecondOpinionSettingsForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            second_opinions.update_second_opinion_settings(
                project=project,
                percent=form.cleaned_data["percent"],
                below_confidence=form.cleaned_data["below_confidence"],
            )
            messages.success(request, "Second-opinion settings saved.")
            return redirect("annotations:team", project.pk)
        status = 400
    context = page_context(
        request,
        project,
        "team",
        form=form,
        open_adjudications=list_adjudications(project=project).count(),
        flagged=list_flagged_labels(project=project).count(),
    )
    return render(request, "annotations/team/settings.html", context, status=status)


@require_GET
@role_required(Role.CURATOR)
def adjudication_list(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_visible_project(request, project_pk)
    items = [get_adjudication_item(adjudication=a) for a in list_adjudications(project=project)]
    context = page_context(request, project, "adjudication", items=items)
    return render(request, "annotations/team/adjudications.html", context)


def _adjudication(request: HttpRequest, pk: int) -> Adjudication:
    visible = list_visible_projects(request.user)
    return get_object_or_404(
        Adjudication.objects.select_related("interaction__project", "decided_by").filter(
            interaction__project__in=visible
        ),
        pk=pk,
    )


@require_http_methods(["GET", "POST"])
@role_required(Role.CURATOR)
def adjudication_detail(request: HttpRequest, pk: int) -> HttpResponse:
    adjudication = _adjudication(request, pk)
    project = adjudication.interaction.project
    form = DecisionForm(request.POST or None)
    status, conflict = 200, ""
    if request.method == "POST":
        if not form.is_valid():
            status, conflict = 400, _form_errors(form)
        else:
            try:
                decide_adjudication(
                    adjudication=adjudication,
                    user=request.user,
                    label_class=form.cleaned_data["label_class"],
                    expected_version=form.cleaned_data["version"],
                    note=form.cleaned_data["note"] or "",
                )
            except DomainError as exc:
                status = 409 if isinstance(exc, EditConflict) else 422
                conflict = str(exc)
            else:
                messages.success(request, f"Decided interaction {adjudication.interaction_id}.")
                return redirect("annotations:adjudication", adjudication.pk)
        adjudication = _adjudication(request, pk)
    context = page_context(
        request,
        project,
        "adjudication",
        item=get_adjudication_item(adjudication=adjudication),
        conflict=conflict,
    )
    return render(request, "annotations/team/adjudication.html", context, status=status)


@require_GET
@role_required(Role.CURATOR)
def flag_inbox(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_visible_project(request, project_pk)
    context = page_context(
        request,
        project,
        "flags",
        flagged=list_flagged_labels(project=project),
        guideline_form=GuidelineForm(initial={"guideline": project.guideline}),
    )
    return render(request, "annotations/team/flags.html", context)


def _back_to_inbox(request: HttpRequest, project_pk: int, exc: DomainError | None, done: str):
    if exc is None:
        messages.success(request, done)
    else:
        messages.error(request, str(exc))
    return redirect("annotations:flags", project_pk)


def _flag_action(request: HttpRequest, pk: int, form_class, write, done: str) -> HttpResponse:
    """Validate the form, call `write(interaction, cleaned_data)`, back to the inbox."""
    interaction = get_object_or_404(visible_interactions(request), pk=pk)
    form = form_class(request.POST)
    if not form.is_valid():
        return HttpResponse(_form_errors(form), status=400, content_type="text/plain")
    error = None
    try:
        write(interaction, form.cleaned_data)
    except DomainError as exc:
        error = exc
    return _back_to_inbox(
        request, interaction.project_id, error, done.format(pk=pk, **form.cleaned_data)
    )


@require_POST
@role_required(Role.CURATOR)
def flag_label(request: HttpRequest, pk: int) -> HttpResponse:
    """Label a flagged item (a curator's review; optimistic locking on the version)."""

    def write(interaction, data):
        labels.record_review(
            interaction=interaction,
            user=request.user,
            label_class=data["label_class"],
            note=data["note"] or "",
            expected_version=data["version"],
        )

    return _flag_action(
        request, pk, DecisionForm, write, "Labeled interaction {pk} as {label_class}."
    )


@require_POST
@role_required(Role.CURATOR)
def flag_return(request: HttpRequest, pk: int) -> HttpResponse:
    """Send a flagged item back to the review queue with a comment for the reviewer."""

    def write(interaction, data):
        labels.return_to_review(
            interaction=interaction,
            user=request.user,
            comment=data["comment"],
            expected_version=data["version"],
        )

    done = "Interaction {pk} is back in the review queue with your comment."
    return _flag_action(request, pk, ReturnToReviewForm, write, done)


@require_POST
@role_required(Role.CURATOR)
def guideline_amend(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_visible_project(request, project_pk)
    form = GuidelineForm(request.POST)
    if not form.is_valid():
        return HttpResponse(_form_errors(form), status=400, content_type="text/plain")
    error = None
    try:
        project = flags.amend_guideline(
            project=project, user=request.user, text=form.cleaned_data["guideline"]
        )
    except DomainError as exc:
        error = exc
    done = f"Guideline saved as revision {project.guideline_revision}."
    return _back_to_inbox(request, project.pk, error, done)


@require_GET
@role_required(Role.CURATOR)
def consistency(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_visible_project(request, project_pk)
    report = get_consistency_report(project=project)
    sections = [
        (kind, title, report.groups[kind][:200], len(report.groups[kind]))
        for kind, title in KINDS.items()
    ]
    context = page_context(
        request,
        project,
        "consistency",
        sections=sections,
        several=report.pairs_with_several_sentences,
        unclear=Label.Status.UNCLEAR,
        reopen=LabelEvent.Action.REOPEN,
    )
    return render(request, "annotations/team/consistency.html", context)
