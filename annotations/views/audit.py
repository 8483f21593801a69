"""The Audit page (curators and admins): start a blind audit, read the estimated accuracy of the
unreviewed labels with its interval, set the auto-accept error rate, and (admins) the per-reviewer
rubber-stamp check. Reviewers answer the audit items from the review queue, blind."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from annotations import audit_stats
from annotations.exceptions import AuditCannotStart
from annotations.models import Audit
from annotations.roles import Role, has_role
from annotations.selectors import audit as audit_selectors
from annotations.services import audit as audit_service
from annotations.views.access import role_required
from annotations.views.common import get_visible_project, page_context


class AuditStartForm(forms.Form):
    source = forms.ChoiceField(
        choices=[(Audit.Source.MODEL, "model labels"), (Audit.Source.RULE, "rule labels")],
        initial=Audit.Source.MODEL,
    )
    size = forms.IntegerField(
        min_value=1, max_value=audit_service.MAX_AUDIT_SIZE, initial=audit_stats.DEFAULT_AUDIT_SIZE
    )
    by_pattern = forms.BooleanField(
        required=False,
        initial=True,
        label="Take sentence patterns whole",
        help_text="One answer stands for every row with the same blinded sentence (assumes they "
        "share the right class); untick for a plain random draw of rows.",
    )


class AutoAcceptForm(forms.Form):
    alpha = forms.CharField(
        required=False,
        max_length=20,
        label="Target error rate (alpha)",
        help_text="Between 0 and 0.5, e.g. 0.01 for 1 %. Empty turns auto-accept off.",
    )


def _page(request, project, *, start_form=None, alpha_form=None, status=200) -> HttpResponse:
    context = page_context(
        request,
        project,
        "audit",
        start_form=start_form or AuditStartForm(),
        alpha_form=alpha_form or AutoAcceptForm(initial={"alpha": project.auto_accept_alpha or ""}),
        model_summary=audit_selectors.get_audit_summary(project=project),
        rule_summary=audit_selectors.get_audit_summary(project=project, source=Audit.Source.RULE),
        audits=audit_selectors.list_audits(project=project),
        auto_accept=audit_selectors.get_auto_accept(project=project),
        checks=(
            audit_selectors.get_rubber_stamp_checks(project=project)
            if has_role(request.user, Role.ADMIN)
            else None
        ),
        items_needed=audit_stats.items_needed(
            project.auto_accept_alpha, classes=len(project.label_classes)
        )
        if project.auto_accept_alpha
        else None,
    )
    return render(request, "annotations/audit.html", context, status=status)


@require_http_methods(["GET", "POST"])
@role_required(Role.CURATOR)
def audit_page(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_visible_project(request, project_pk)
    if request.method == "GET":
        return _page(request, project)
    if request.POST.get("action") == "alpha":
        form = AutoAcceptForm(request.POST)
        try:
            if form.is_valid():
                audit_service.set_auto_accept_alpha(
                    project=project, alpha=form.cleaned_data["alpha"]
                )
                messages.success(request, "Auto-accept error rate saved.")
                return redirect("annotations:audit", project_pk=project.pk)
        except AuditCannotStart as exc:
            form.add_error("alpha", str(exc))
        return _page(request, project, alpha_form=form, status=422)
    form = AuditStartForm(request.POST)
    if form.is_valid():
        try:
            audit = audit_service.start_audit(
                project=project,
                user=request.user,
                size=form.cleaned_data["size"],
                source=form.cleaned_data["source"],
                by_pattern=form.cleaned_data["by_pattern"],
            )
        except AuditCannotStart as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                f"Audit {audit.pk} drawn: {audit.items.count()} items are waiting in the review "
                "queue, blind.",
            )
            return redirect("annotations:audit", project_pk=project.pk)
    return _page(request, project, start_form=form, status=422)
