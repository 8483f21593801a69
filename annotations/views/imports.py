"""Curator import page: upload a CSV/TSV/JSONL file, see the outcome or the row-level report."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from annotations.exceptions import ImportFormatError
from annotations.models import Label, Project
from annotations.roles import Role
from annotations.services.uploads import import_uploaded_file
from annotations.views.access import role_required
from annotations.views.common import get_visible_project, page_context

RECENT_IMPORTS = 20


class ImportForm(forms.Form):
    file = forms.FileField(
        help_text="CSV, TSV or JSONL with the columns 'Drug 1', 'Drug 2', "
        "'Interaction Description' (UTF-8)."
    )
    label_column = forms.CharField(
        max_length=200,
        required=False,
        help_text="Optional: the column holding labels (one of the project's classes).",
    )
    label_source = forms.ChoiceField(
        choices=[
            (Label.Source.IMPORT, "import: labels from an outside source (the default)"),
            (Label.Source.SEED, "seed: labels the team made itself, to start the model"),
        ],
        initial=Label.Source.IMPORT,
        required=False,
        label="Record the file's labels as",
        help_text="Shown in the export's label_source column; both count before rules and model.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.DDI_MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"File too large: {upload.size:,} bytes; the limit is {limit:,} bytes. "
                "Split the file and upload the parts."
            )
        return upload


def _page(request, project: Project, form, *, status=200, **extra) -> HttpResponse:
    recent = project.imports.select_related("created_by").order_by("-id")[:RECENT_IMPORTS]
    context = page_context(request, project, "imports", form=form, recent=recent, **extra)
    return render(request, "annotations/imports/page.html", context, status=status)


@require_http_methods(["GET", "POST"])
@role_required(Role.CURATOR)
def import_page(request: HttpRequest, project_pk: int) -> HttpResponse:
    """GET: the form and recent imports. POST: import now (all-or-nothing) and show the result."""
    project = get_visible_project(request, project_pk)
    if request.method == "GET":
        return _page(request, project, ImportForm())
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _page(request, project, form, status=422)
    try:
        outcome = import_uploaded_file(
            project=project,
            upload=form.cleaned_data["file"],
            label_column=form.cleaned_data["label_column"],
            label_source=form.cleaned_data["label_source"] or Label.Source.IMPORT,
            user=request.user,
        )
    except ImportFormatError as exc:
        return _page(request, project, ImportForm(), status=422, failure=exc)
    return _page(request, project, ImportForm(), outcome=outcome)
