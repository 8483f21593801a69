"""Review pages: the queue, one item with keyboard actions, and the HTMX action endpoints.

Each action endpoint answers an HTMX request with the review pane of the next item (so no full
page load) and a plain form post with a redirect. Conflicts answer 409 with the fresh item and a
message naming what the other reviewer saved; invalid input answers 422.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from annotations.exceptions import DomainError, EditConflict
from annotations.forms import QueueFilterForm, ReviewActionForm
from annotations.models import Interaction, LabelEvent, Project, ReviewTask
from annotations.roles import Role
from annotations.selectors.blind import describe_blind_answer, open_blind_task
from annotations.selectors.progress import get_review_progress
from annotations.selectors.projects import list_visible_projects
from annotations.selectors.queue import QueueCursor, get_review_item, get_review_queue_page
from annotations.selectors.team import get_reopen_comment
from annotations.services import blind, labels
from annotations.services.highlighting import highlight_mentions
from annotations.views.access import role_required
from annotations.views.common import get_visible_project, page_context, visible_interactions

QUEUE_FILTER_FIELDS = tuple(QueueFilterForm.base_fields)


@require_GET
@role_required(Role.REVIEWER)
def home(request: HttpRequest) -> HttpResponse:
    project = list_visible_projects(request.user).first()
    if project is None:
        return render(request, "annotations/no_project.html", page_context(request, None, ""))
    return redirect("annotations:queue", project.pk)


def _filter_query(data: QueryDict) -> str:
    """The queue filters of a request as a query string (carried from page to page)."""
    pairs = [(key, value) for key in QUEUE_FILTER_FIELDS for value in data.getlist(key) if value]
    return urlencode(pairs)


def _posted_filters(request: HttpRequest) -> str:
    """The filters carried in a form, re-encoded: a crafted value (CR/LF, unknown keys) can
    never reach the HX-Push-Url header or a redirect as it was sent."""
    return _filter_query(QueryDict(request.POST.get("filters", "")))


def _filter_form(project: Project, query: str) -> QueueFilterForm:
    return QueueFilterForm(QueryDict(query), project=project)


@require_GET
@role_required(Role.REVIEWER)
def queue(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_visible_project(request, project_pk)
    query = _filter_query(request.GET)
    form = _filter_form(project, query)
    page = get_review_queue_page(
        project=project,
        user=request.user,
        filters=form.to_filters(),
        cursor=QueueCursor.decode(request.GET.get("after")),
    )
    next_url = None
    if page.next_cursor:
        next_url = "?" + urlencode([*QueryDict(query).items(), ("after", page.next_cursor)])
    context = page_context(
        request,
        project,
        "queue",
        project=project,
        form=form,
        page=page,
        filter_query=query,
        next_url=next_url,
        is_first_page=not request.GET.get("after"),
        progress=get_review_progress(
            project=project,
            user=request.user,
            started_at=_session_start(request),
            filters=form.to_filters(),
        ),
    )
    return render(request, "annotations/queue.html", context)


def _session_start(request: HttpRequest) -> datetime:
    """When this login session started reviewing (kept in the session; the pace counts from
    it)."""
    raw = request.session.get("review_started_at")
    started = parse_datetime(raw) if isinstance(raw, str) else None
    if started is None:
        started = timezone.now()
        request.session["review_started_at"] = started.isoformat()
    return started


def _item_context(
    request: HttpRequest, interaction: Interaction, query: str, **extra
) -> dict[str, object]:
    item = get_review_item(interaction=interaction, user=request.user)
    # A curator's comment when they sent the item back (part of the history: hidden if blind).
    reopened = None if item.is_blind else get_reopen_comment(interaction.pk)
    progress = get_review_progress(
        project=interaction.project,
        user=request.user,
        started_at=_session_start(request),
        filters=_filter_form(interaction.project, query).to_filters(),
    )
    return page_context(
        request,
        interaction.project,
        "review",
        project=interaction.project,
        item=item,
        sentence=highlight_mentions(
            interaction.description,
            interaction.drug_a,
            interaction.drug_b,
            extra=interaction.extra,
        ),
        filter_query=query,
        item_url=_item_url(interaction.pk, query),
        reopened=reopened,
        progress=progress,
        **extra,
    )


def _item_url(pk: int, query: str) -> str:
    url = reverse("annotations:review_item", args=[pk])
    return f"{url}?{query}" if query else url


def _render_pane(
    request: HttpRequest,
    project: Project,
    interaction: Interaction | None,
    query: str,
    *,
    status: int = 200,
    **extra,
) -> HttpResponse:
    """The review pane (HTMX) or the whole review page for `interaction` (None: queue empty)."""
    if interaction is None:
        context = page_context(request, project, "review", project=project, filter_query=query)
        context.update(extra)
        template = "annotations/partials/queue_empty.html"
        if not request.htmx:
            template = "annotations/review_empty.html"
        response = render(request, template, context, status=status)
        if request.htmx:
            response["HX-Push-Url"] = reverse("annotations:review_next", args=[project.pk])
        return response
    context = _item_context(request, interaction, query, **extra)
    template = (
        "annotations/partials/review_pane.html" if request.htmx else "annotations/review.html"
    )
    response = render(request, template, context, status=status)
    if request.htmx:
        response["HX-Push-Url"] = context["item_url"]
    return response


@require_GET
@role_required(Role.REVIEWER)
def review_next(request: HttpRequest, project_pk: int) -> HttpResponse:
    """Claim the most uncertain unclaimed item and show it."""
    project = get_visible_project(request, project_pk)
    query = _filter_query(request.GET)
    interaction, _task = blind.claim_next_item(
        project=project, user=request.user, filters=_filter_form(project, query).to_filters()
    )
    if interaction is not None and not request.htmx:
        return redirect(_item_url(interaction.pk, query))
    return _render_pane(request, project, interaction, query)


@require_GET
@role_required(Role.REVIEWER)
def review_item(request: HttpRequest, pk: int) -> HttpResponse:
    interaction = get_object_or_404(visible_interactions(request), pk=pk)
    # Read-only: a GET never claims (walking item pages used to lock the whole queue).
    return _render_pane(
        request,
        interaction.project,
        interaction,
        _filter_query(request.GET),
        claimed_by_other=labels.claimed_by_other(interaction_id=interaction.pk, user=request.user),
    )


def _after_action(
    request: HttpRequest, interaction: Interaction, query: str, notice: str
) -> HttpResponse:
    """Move on: claim the next item and show it with a notice about what was just saved."""
    project = interaction.project
    upcoming, _task = blind.claim_next_item(
        project=project,
        user=request.user,
        filters=_filter_form(project, query).to_filters(),
        exclude_ids=frozenset({interaction.pk}),
    )
    if not request.htmx:
        messages.success(request, notice)
        if upcoming is None:
            return redirect(reverse("annotations:review_next", args=[project.pk]))
        return redirect(_item_url(upcoming.pk, query))
    return _render_pane(request, project, upcoming, query, notice=notice, undo_available=True)


@require_POST
@role_required(Role.REVIEWER)
def review_action(request: HttpRequest, pk: int) -> HttpResponse:
    """Accept the prediction, pick a class, or flag as unclear (optimistic locking on version)."""
    interaction = get_object_or_404(visible_interactions(request), pk=pk)
    query = _posted_filters(request)
    form = ReviewActionForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(str(e) for errs in form.errors.values() for e in errs)
        return _render_pane(
            request, interaction.project, interaction, query, status=422, error=errors
        )
    data = form.cleaned_data
    task = open_blind_task(request.user, interaction)
    if task is not None:
        return _blind_action(request, interaction, task, form, query)
    try:
        if data["action"] == "accept":
            label = labels.accept_prediction(
                interaction=interaction, user=request.user, expected_version=data["version"]
            )
        else:
            label = labels.record_review(
                interaction=interaction,
                user=request.user,
                label_class=data["label_class"] or None,
                status=form.status,
                note=data["note"] or "",
                expected_version=data["version"],
                action=LabelEvent.Action.FLAG
                if data["action"] == "flag"
                else LabelEvent.Action.CHANGE,
            )
    except DomainError as exc:
        return _error_pane(request, interaction, query, exc)
    what = "unclear (flagged)" if data["action"] == "flag" else label.label_class
    return _after_action(
        request,
        interaction,
        query,
        f"Saved {what} for {interaction.drug_a} + {interaction.drug_b}.",
    )


def _error_pane(
    request: HttpRequest, interaction: Interaction, query: str, exc: DomainError
) -> HttpResponse:
    """The same item again: 409 with the conflict's message, 422 for any other domain error."""
    if isinstance(exc, EditConflict):
        return _render_pane(
            request, interaction.project, interaction, query, status=409, conflict=str(exc)
        )
    return _render_pane(
        request, interaction.project, interaction, query, status=422, error=str(exc)
    )


def _blind_action(
    request: HttpRequest, interaction: Interaction, task: ReviewTask, form, query: str
) -> HttpResponse:
    """A blind answer: stored on the ReviewTask (second opinion) or as the audit label."""
    data = form.cleaned_data
    if data["action"] == "accept":
        return _render_pane(
            request,
            interaction.project,
            interaction,
            query,
            status=422,
            error="This is a blind review: there is no model answer to accept; choose a class.",
        )
    try:
        answered = blind.answer_blind_task(
            task=task,
            user=request.user,
            label_class=data["label_class"] or None,
            status=form.status,
            note=data["note"] or "",
        )
    except DomainError as exc:
        return _error_pane(request, interaction, query, exc)
    return _after_action(request, interaction, query, describe_blind_answer(answered))


@require_POST
@role_required(Role.REVIEWER)
def review_skip(request: HttpRequest, pk: int) -> HttpResponse:
    interaction = get_object_or_404(visible_interactions(request), pk=pk)
    task = open_blind_task(request.user, interaction)
    if task is not None:
        blind.release_blind_task(task=task, user=request.user)
    else:
        labels.skip_interaction(interaction=interaction, user=request.user)
    return _after_action(
        request,
        interaction,
        _posted_filters(request),
        f"Skipped {interaction.drug_a} + {interaction.drug_b}.",
    )


@require_POST
@role_required(Role.REVIEWER)
def review_undo(request: HttpRequest, project_pk: int) -> HttpResponse:
    """Undo the reviewer's last label change and show that item again."""
    project = get_visible_project(request, project_pk)
    query = _posted_filters(request)
    raw_current = request.POST.get("current") or "0"
    if not raw_current.isascii() or not raw_current.isdigit() or len(raw_current) > 18:
        return HttpResponseBadRequest(
            f"current must be an interaction id (a whole number), not {raw_current[:40]!r}.",
            content_type="text/plain; charset=utf-8",
        )
    current = visible_interactions(request).filter(pk=int(raw_current)).first()
    try:
        undone = labels.undo_last_action(user=request.user, project=project)
    except EditConflict as exc:
        return _render_pane(request, project, current, query, status=409, conflict=str(exc))
    if undone is None:
        return _render_pane(request, project, current, query, notice="Nothing to undo.")
    interaction = undone.interaction
    labels.claim_interaction(interaction_id=interaction.pk, user=request.user)
    notice = f"Undone: {interaction.drug_a} + {interaction.drug_b} is back to " + (
        f"{undone.event.new_class or 'unclear'}." if undone.event.new_status else "no label."
    )
    if not request.htmx:
        messages.info(request, notice)
        return redirect(_item_url(interaction.pk, query))
    return _render_pane(request, project, interaction, query, notice=notice, undo_available=True)
