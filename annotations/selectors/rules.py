"""Reads about rules: the rule list, each interaction's winning rule, and where the active
rules disagree with the model. All from the stored matches (RuleMatch): no regex runs here."""

from __future__ import annotations

from django.db.models import Count, F, OuterRef, QuerySet, Subquery

from annotations.models import Interaction, ModelVersion, Prediction, Project, Rule, RuleMatch
from annotations.rule_matches import ensure_rule_matches


def list_rules(*, project: Project) -> QuerySet[Rule]:
    """A project's rules in precedence order (priority desc, then oldest first), each with
    `n_matches`, its stored match count."""
    return (
        Rule.objects.filter(project=project)
        .annotate(n_matches=Count("matches"))
        .order_by("-priority", "id")
    )


def _winning_matches(interaction_ref) -> QuerySet[RuleMatch]:
    """The stored matches of one interaction by active rules, in precedence order (priority
    desc, then lowest id): the first is the rule that decides its label."""
    return RuleMatch.objects.filter(
        interaction_id=interaction_ref, rule__is_active=True, rule__is_too_costly=False
    ).order_by("-rule__priority", "rule_id")


def winning_rule_id(interaction_ref=None) -> Subquery:
    """Subquery: the id of the rule that decides the interaction `interaction_ref` points at."""
    ref = interaction_ref if interaction_ref is not None else OuterRef("pk")
    return Subquery(_winning_matches(ref).values("rule_id")[:1])


def winning_rule_class(interaction_ref=None) -> Subquery:
    """Subquery: the class the winning rule gives (None when no active rule matches)."""
    ref = interaction_ref if interaction_ref is not None else OuterRef("pk")
    return Subquery(_winning_matches(ref).values("rule__label_class")[:1])


def with_winning_rule(queryset: QuerySet[Interaction], *, project: Project) -> QuerySet:
    """`queryset` annotated with rule_id and rule_class (the winning rule's), after bringing the
    stored matches up to date (a no-op unless rows arrived outside an import)."""
    ensure_rule_matches(project=project)
    return queryset.annotate(rule_id=winning_rule_id(), rule_class=winning_rule_class())


def interactions_disagreeing_with_rules(
    *, project: Project, model_version: ModelVersion | None
) -> QuerySet[Interaction]:
    """Interactions whose winning active rule names a class other than `model_version`'s
    prediction. Rows without a prediction of that version, or matched by no rule, are left out.
    One SQL query over the stored matches. Human labels are not considered here: the review
    queue applies its own filters.
    """
    if model_version is None:
        return Interaction.objects.none()
    ensure_rule_matches(project=project)
    predicted = Prediction.objects.filter(
        interaction_id=OuterRef("pk"), model_version=model_version
    ).values("predicted_class")[:1]
    return (
        Interaction.objects.filter(project=project)
        .annotate(rule_class=winning_rule_class(), predicted=Subquery(predicted))
        .filter(rule_class__isnull=False, predicted__isnull=False)
        .exclude(rule_class=F("predicted"))
        .order_by("id")
    )
