"""Candidate rows in queue order (predictions, or interactions before any model) and the
per-pattern spread."""

from __future__ import annotations

from collections import OrderedDict

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from annotations.models import (
    Interaction,
    ModelVersion,
    Prediction,
    Project,
)
from annotations.selectors.queue.filters import (
    QueueCursor,
    QueueFilters,
    QueueItem,
    _exclusions,
    _interaction_filters,
    _rule_disagreement_ids,
)


def _prediction_rows(
    *,
    project: Project,
    user: AbstractBaseUser,
    filters: QueueFilters,
    model_version: ModelVersion,
    cursor: QueueCursor | None,
    pattern_hash: str | None = None,
) -> QuerySet[Prediction]:
    qs = Prediction.objects.filter(
        _interaction_filters(project=project, user=user, filters=filters, prefix="interaction__"),
        model_version=model_version,
    )
    if pattern_hash is not None:
        qs = qs.filter(interaction__pattern_hash=pattern_hash)
    if filters.predicted_class:
        qs = qs.filter(predicted_class=filters.predicted_class)
    if filters.min_confidence is not None:
        qs = qs.filter(confidence__gte=filters.min_confidence)
    if filters.max_confidence is not None:
        qs = qs.filter(confidence__lte=filters.max_confidence)
    if filters.disagrees_with_rule:
        qs = qs.filter(interaction_id__in=_rule_disagreement_ids(project, model_version))
    if cursor is not None and cursor.confidence is not None:
        c, m, i = cursor.confidence, cursor.margin, cursor.interaction_id
        # Row comparison (confidence, margin, id) > (c, m, i), spelled out for SQLite; the extra
        # `confidence >= c` lets the planner start the index range scan at the cursor.
        qs = qs.filter(confidence__gte=c).filter(
            Q(confidence__gt=c)
            | Q(confidence=c, margin__gt=m)
            | Q(confidence=c, margin=m, interaction_id__gt=i)
        )
    qs = _exclusions(qs, user=user, filters=filters, id_field="interaction_id")
    return qs.select_related("interaction").order_by("confidence", "margin", "interaction_id")


def _interaction_rows(
    *,
    project: Project,
    user: AbstractBaseUser,
    filters: QueueFilters,
    cursor: QueueCursor | None,
) -> QuerySet[Interaction]:
    qs = Interaction.objects.filter(
        _interaction_filters(project=project, user=user, filters=filters, prefix="")
    )
    if filters.disagrees_with_rule:
        qs = qs.filter(id__in=_rule_disagreement_ids(project, None))
    if cursor is not None:
        qs = qs.filter(id__gt=cursor.interaction_id)
    qs = _exclusions(qs, user=user, filters=filters, id_field="pk")
    return qs.order_by("id")


def _spread(
    candidates: list[QueueItem],
    *,
    page_size: int,
    per_pattern: int,
    already: list[QueueItem] = (),
) -> list[QueueItem]:
    """Round-robin over patterns (in order of each pattern's most uncertain row), capped per
    pattern (rows in `already` count toward the cap and are not repeated); top up in queue
    order when the window holds too few patterns. Returns `already` followed by the picks."""
    taken = {item.interaction.pk for item in already}
    used: dict[str, int] = {}
    for item in already:
        used[item.interaction.pattern_hash] = used.get(item.interaction.pattern_hash, 0) + 1
    groups: OrderedDict[str, list[QueueItem]] = OrderedDict()
    for item in candidates:
        if item.interaction.pk not in taken:
            groups.setdefault(item.interaction.pattern_hash, []).append(item)
    picked: list[QueueItem] = list(already)
    for level in range(per_pattern):
        # A pattern already on the page (a lane row) takes its next row one level later.
        for pattern, rows in groups.items():
            rank = level - used.get(pattern, 0)
            if 0 <= rank < len(rows) and len(picked) < page_size:
                picked.append(rows[rank])
    if len(picked) < page_size:
        chosen = {item.interaction.pk for item in picked}
        picked.extend(item for item in candidates if item.interaction.pk not in chosen)
        picked = picked[:page_size]
    # Every pattern's first row before any pattern's second row (lane rows lead the first rank).
    seen: dict[str, int] = {}
    ranks = []
    for item in picked:
        pattern = item.interaction.pattern_hash
        ranks.append(seen.get(pattern, 0))
        seen[pattern] = ranks[-1] + 1
    return [item for _, item in sorted(zip(ranks, picked, strict=True), key=lambda pair: pair[0])]


def _sort_key(item: QueueItem) -> tuple:
    if item.confidence is None:
        return (0.0, 0.0, item.interaction.pk)
    return (item.confidence, item.margin, item.interaction.pk)


def _item_from_prediction(pred: Prediction) -> QueueItem:
    return QueueItem(
        interaction=pred.interaction,
        predicted_class=pred.predicted_class,
        confidence=pred.confidence,
        margin=pred.margin,
        probabilities=list(pred.probabilities),
    )


def _pattern_leaders(
    *,
    project: Project,
    user: AbstractBaseUser,
    filters: QueueFilters,
    model_version: ModelVersion,
    seen: set[str],
    wanted: int,
    window: int,
) -> list[QueueItem]:
    """The most uncertain row of each of the next `wanted` patterns not in `seen`, in queue
    order: what tops a first page up to distinct patterns when a few big patterns fill its whole
    candidate window. Each query skips every pattern found so far and yields at least one new
    one, so there are at most `wanted` queries. Read-only."""
    seen = set(seen)
    leaders: list[QueueItem] = []
    for _ in range(wanted):
        preds = list(
            _prediction_rows(
                project=project,
                user=user,
                filters=filters,
                model_version=model_version,
                cursor=None,
            ).exclude(interaction__pattern_hash__in=seen)[:window]
        )
        for pred in preds:
            pattern = pred.interaction.pattern_hash
            if pattern not in seen and len(leaders) < wanted:
                seen.add(pattern)
                leaders.append(_item_from_prediction(pred))
        if len(leaders) >= wanted or len(preds) < window:
            break
    return leaders
