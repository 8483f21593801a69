"""Reads about rules: the rule list and where the active rules disagree with the model."""

from __future__ import annotations

from django.db.models import Count, Min, Q, QuerySet

from annotations.models import Interaction, ModelVersion, Prediction, Project, Rule
from annotations.services.rules import get_rule_matcher


def list_rules(*, project: Project) -> QuerySet[Rule]:
    """A project's rules in precedence order (priority desc, then oldest first)."""
    return Rule.objects.filter(project=project).order_by("-priority", "id")


def interactions_disagreeing_with_rules(
    *, project: Project, model_version: ModelVersion | None
) -> QuerySet[Interaction]:
    """Interactions whose winning active rule names a class other than `model_version`'s
    prediction. Rows without a prediction of that version, or matched by no rule, are left out.

    Blinded-text rules are evaluated once per distinct sentence pattern (pattern_hash) and the
    result is a pattern_hash filter; raw-text rules need the row's own description, so when a
    project has any active raw rule the rows are scanned once (id order) and the result is an
    id filter. Human labels are not considered here: the review queue applies its own filters.
    """
    if model_version is None:
        return Interaction.objects.none()
    matcher = get_rule_matcher(project=project)
    if not matcher.rules:
        return Interaction.objects.none()
    interactions = Interaction.objects.filter(project=project)
    predictions = Prediction.objects.filter(model_version=model_version)
    if not matcher.has_raw_rules:
        by_class: dict[str, list[str]] = {}
        groups = (
            interactions.values("pattern_hash")
            .annotate(n=Count("id"), text=Min("blinded_text"))
            .order_by("pattern_hash")
        )
        for group in groups.iterator(chunk_size=2000):
            hit = matcher.first_match(
                blinded_text=group["text"], pattern_hash=group["pattern_hash"], description=""
            )
            if hit is not None:
                by_class.setdefault(hit.label_class, []).append(group["pattern_hash"])
        condition = Q(pk__in=[])
        for label_class, hashes in by_class.items():
            condition |= Q(
                pk__in=predictions.filter(interaction__pattern_hash__in=hashes)
                .exclude(predicted_class=label_class)
                .values("interaction_id")
            )
        return interactions.filter(condition).order_by("id")
    ids, last_id = [], 0
    while True:
        batch = list(
            interactions.filter(id__gt=last_id, predictions__model_version=model_version)
            .order_by("id")
            .values_list(
                "id", "blinded_text", "pattern_hash", "description", "predictions__predicted_class"
            )[:5000]
        )
        if not batch:
            break
        last_id = batch[-1][0]
        for pk, blinded, pattern_hash, description, predicted in batch:
            hit = matcher.first_match(
                blinded_text=blinded, pattern_hash=pattern_hash, description=description
            )
            if hit is not None and hit.label_class != predicted:
                ids.append(pk)
    return interactions.filter(pk__in=ids).order_by("id")
