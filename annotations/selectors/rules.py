"""Reads about rules: the rule list and where the active rules disagree with the model."""

from __future__ import annotations

import json

from django.db import connection
from django.db.models import Count, Min, Q, QuerySet
from django.db.models.expressions import RawSQL

from annotations.models import Interaction, ModelVersion, Prediction, Project, Rule
from annotations.services.rules import get_rule_matcher


def _one_parameter(values: list, *, integer: bool) -> RawSQL | list:
    """`values` as a subquery bound to ONE parameter (a JSON array), for `__in` filters: a
    Python list becomes one SQL variable per item and fails past the database's limit
    (SQLite: 32,766 or 250,000 by build) on large match sets."""
    payload = json.dumps(values)
    if connection.vendor == "sqlite":
        # Parameterised: the values travel as one bound JSON string, never in the SQL text.
        return RawSQL("SELECT value FROM json_each(%s)", (payload,))
    if connection.vendor == "postgresql":
        cast = "::bigint" if integer else ""
        sql = f"SELECT (jsonb_array_elements_text(%s::jsonb)){cast}"  # cast: a constant
        return RawSQL(sql, (payload,))  # noqa: S611
    return values


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
                pk__in=predictions.filter(
                    interaction__pattern_hash__in=_one_parameter(hashes, integer=False)
                )
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
    return interactions.filter(pk__in=_one_parameter(ids, integer=True)).order_by("id")
