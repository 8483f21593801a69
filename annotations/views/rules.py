"""Curator pages for rules: list, create and edit, with a preview (matches and model
disagreements) shown before anything is saved."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from annotations.exceptions import DomainError
from annotations.models import Project, Rule
from annotations.roles import Role
from annotations.selectors.projects import list_visible_projects
from annotations.selectors.rules import list_rules
from annotations.services import rules as rule_service
from annotations.views.access import role_required
from annotations.views.common import get_visible_project, page_context


class RuleForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    kind = forms.ChoiceField(choices=Rule.Kind.choices, initial=Rule.Kind.REGEX)
    field = forms.ChoiceField(choices=Rule.Field.choices, initial=Rule.Field.BLINDED)
    pattern = forms.CharField(
        max_length=rule_service.MAX_PATTERN_LENGTH,
        strip=False,
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off"}),
        help_text="A Python regular expression (or a keyword). Blinded text says DRUG_A / DRUG_B.",
    )
    label_class = forms.ChoiceField(choices=())
    priority = forms.IntegerField(initial=0, min_value=-1_000_000, max_value=1_000_000)
    is_active = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["label_class"].choices = [(c, c) for c in project.label_classes]


def _form_page(request, project, form, *, rule=None, preview=None, status=200) -> HttpResponse:
    context = page_context(request, project, "rules", form=form, rule=rule, preview=preview)
    return render(request, "annotations/rules/form.html", context, status=status)


def _page_number(value: str | None) -> int:
    """The preview page asked for; anything odd is page 1 (it only pages a read)."""
    # isascii: "²".isdigit() is true and int("²") raises.
    ok = value and value.isascii() and value.isdigit() and len(value) < 7
    return max(1, int(value)) if ok else 1


def _submit(request: HttpRequest, project: Project, rule: Rule | None) -> HttpResponse:
    """Preview or save the posted form; domain errors go back to the form as messages."""
    form = RuleForm(request.POST, project=project)
    if not form.is_valid():
        return _form_page(request, project, form, rule=rule, status=422)
    data = form.cleaned_data
    try:
        if request.POST.get("action") != "save":
            preview = rule_service.preview_rule(
                project=project,
                kind=data["kind"],
                field=data["field"],
                pattern=data["pattern"],
                label_class=data["label_class"],
                page=_page_number(request.POST.get("page")),
            )
            return _form_page(request, project, form, rule=rule, preview=preview)
        if rule is None:
            rule = rule_service.create_rule(project=project, user=request.user, **data)
        else:
            rule = rule_service.update_rule(rule=rule, user=request.user, **data)
    except DomainError as exc:
        form.add_error("pattern" if "pattern" in str(exc).lower() else None, str(exc))
        return _form_page(request, project, form, rule=rule, status=422)
    messages.success(request, f"Rule “{rule.name}” saved.")
    return redirect("annotations:rules", project_pk=project.pk)


@require_http_methods(["GET"])
@role_required(Role.CURATOR)
def rule_list(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_visible_project(request, project_pk)
    context = page_context(request, project, "rules", rules=list_rules(project=project))
    return render(request, "annotations/rules/list.html", context)


@require_http_methods(["GET", "POST"])
@role_required(Role.CURATOR)
def rule_create(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_visible_project(request, project_pk)
    if request.method == "POST":
        return _submit(request, project, None)
    return _form_page(request, project, RuleForm(project=project))


@require_http_methods(["GET", "POST"])
@role_required(Role.CURATOR)
def rule_edit(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(
        Rule.objects.select_related("project").filter(
            project__in=list_visible_projects(request.user)
        ),
        pk=pk,
    )
    if request.method == "POST":
        return _submit(request, rule.project, rule)
    initial = {name: getattr(rule, name) for name in RuleForm.base_fields}
    return _form_page(
        request, rule.project, RuleForm(initial=initial, project=rule.project), rule=rule
    )
