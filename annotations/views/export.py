"""Curator export page: pick filters and a format, download a streamed file or its card."""

from __future__ import annotations

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from annotations.api.exports import streaming_export_response
from annotations.exceptions import DomainError
from annotations.final_label_order import SOURCES
from annotations.models import Project
from annotations.roles import Role
from annotations.services.export import FORMATS, build_export_card, filters_from_query
from annotations.services.export.card import card_markdown
from annotations.views.access import role_required
from annotations.views.common import get_visible_project, page_context


class ExportForm(forms.Form):
    file_format = forms.ChoiceField(choices=[(f, f.upper()) for f in FORMATS], initial="csv")
    min_confidence = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        help_text="Drops model-labeled rows below this confidence.",
    )
    sources = forms.MultipleChoiceField(
        choices=[(s, s) for s in SOURCES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: all sources.",
    )
    reviewed_only = forms.BooleanField(required=False)
    auto_accepted = forms.BooleanField(
        required=False,
        label="Only auto-accepted model labels",
        help_text="Model-labeled rows only where the audit certifies the project's target error "
        "rate (Audit page).",
    )
    classes = forms.MultipleChoiceField(
        choices=(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: all.",
    )

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["classes"].choices = [(c, c) for c in project.label_classes]


def _page(request, project, form, *, error="", status=200) -> HttpResponse:
    context = page_context(request, project, "export", form=form, error=error)
    return render(request, "annotations/export/page.html", context, status=status)


@require_GET
@role_required(Role.CURATOR)
def export_page(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_visible_project(request, project_pk)
    return _page(request, project, ExportForm(project=project))


@require_GET
@role_required(Role.CURATOR)
def export_download(request: HttpRequest, project_pk: int) -> HttpResponse:
    """The streamed file (same code path as the API download)."""
    project = get_visible_project(request, project_pk)
    form = ExportForm(request.GET, project=project)
    if not form.is_valid():
        return _page(request, project, form, status=422)
    try:
        return streaming_export_response(project=project, query=form.cleaned_data)
    except DomainError as exc:
        return _page(request, project, form, error=str(exc), status=422)


@require_GET
@role_required(Role.CURATOR)
def export_card(request: HttpRequest, project_pk: int) -> HttpResponse:
    """The dataset card (Markdown) for the chosen filters: one counting pass over the data."""
    project = get_visible_project(request, project_pk)
    form = ExportForm(request.GET, project=project)
    if not form.is_valid():
        return _page(request, project, form, status=422)
    data = form.cleaned_data
    try:
        filters = filters_from_query(project=project, query=data)
    except DomainError as exc:
        return _page(request, project, form, error=str(exc), status=422)
    card = build_export_card(project=project, filters=filters, export_format=data["file_format"])
    response = HttpResponse(card_markdown(card), content_type="text/markdown; charset=utf-8")
    name = slugify(project.name) or f"project-{project.pk}"
    response["Content-Disposition"] = f'attachment; filename="ddi-{name}.card.md"'
    return response
