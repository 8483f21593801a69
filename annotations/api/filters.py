"""django-filter FilterSets: every filter is a declared field, never a user-chosen ORM key."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q

from annotations.models import Interaction, Label, Prediction, Rule, Run

MAX_ID = 2**63 - 1


class IdFilter(django_filters.NumberFilter):
    """An integer id in the database's range (a huge number is a 400, not a DB overflow)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class ProbabilityFilter(django_filters.NumberFilter):
    field_class = forms.FloatField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 0.0)
        kwargs.setdefault("max_value", 1.0)
        super().__init__(*args, **kwargs)


class InteractionFilter(django_filters.FilterSet):
    project = IdFilter(field_name="project_id")
    drug = django_filters.CharFilter(method="filter_drug", help_text="either drug (contains)")
    split = django_filters.CharFilter()
    pattern_hash = django_filters.CharFilter()
    label_source = django_filters.ChoiceFilter(
        field_name="label__source", choices=Label.Source.choices
    )
    label_class = django_filters.CharFilter(field_name="label__label_class")
    has_label = django_filters.BooleanFilter(field_name="label", lookup_expr="isnull", exclude=True)
    search = django_filters.CharFilter(
        field_name="description", lookup_expr="icontains", help_text="text in the description"
    )

    class Meta:
        model = Interaction
        fields = ["project", "split", "pattern_hash"]

    def filter_drug(self, queryset, name, value):
        return queryset.filter(Q(drug_a__icontains=value) | Q(drug_b__icontains=value))


class LabelFilter(django_filters.FilterSet):
    project = IdFilter(field_name="interaction__project_id")
    interaction = IdFilter(field_name="interaction_id")
    source = django_filters.ChoiceFilter(choices=Label.Source.choices)
    status = django_filters.ChoiceFilter(choices=Label.Status.choices)
    label_class = django_filters.CharFilter()

    class Meta:
        model = Label
        fields = ["project", "interaction", "source", "status", "label_class"]


class PredictionFilter(django_filters.FilterSet):
    project = IdFilter(field_name="model_version__project_id")
    model_version = IdFilter(field_name="model_version_id")
    interaction = IdFilter(field_name="interaction_id")
    predicted_class = django_filters.CharFilter()
    min_confidence = ProbabilityFilter(field_name="confidence", lookup_expr="gte")
    max_confidence = ProbabilityFilter(field_name="confidence", lookup_expr="lte")

    class Meta:
        model = Prediction
        fields = ["project", "model_version", "interaction", "predicted_class"]


class RuleFilter(django_filters.FilterSet):
    project = IdFilter(field_name="project_id")
    is_active = django_filters.BooleanFilter()

    class Meta:
        model = Rule
        fields = ["project", "is_active"]


class RunFilter(django_filters.FilterSet):
    project = IdFilter(field_name="project_id")
    kind = django_filters.ChoiceFilter(choices=Run.Kind.choices)
    state = django_filters.ChoiceFilter(choices=Run.State.choices)

    class Meta:
        model = Run
        fields = ["project", "kind", "state"]
