"""The unseen-pattern lane: sentence patterns nobody has labeled yet, one row each, biggest
first."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import Count, Max, Q

from annotations.models import (
    Interaction,
    Label,
    ModelVersion,
    Project,
)
from annotations.selectors.queue.filters import QueueFilters, QueueItem
from annotations.selectors.queue.rows import _item_from_prediction, _prediction_rows, _sort_key

# Share of the first spread page reserved for patterns nobody has labeled yet (see module doc).
UNSEEN_PATTERN_SHARE = 0.5


# At most this many unlabeled patterns are tried per lane slot (a pattern may have no row that
# passes the filters); bounds the per-pattern queries.
UNSEEN_PATTERN_TRIES_PER_SLOT = 3


# The unlabeled-pattern list is cached under a fingerprint of the label and interaction tables;
# the timeout only bounds staleness after bulk `QuerySet.update()`s that skip `updated_at`.
UNLABELED_PATTERNS_CACHE_S = 300


def _unlabeled_patterns(project: Project, *, limit: int) -> list[tuple[str, int]]:
    """(pattern hash, rows) of the project's patterns with no "labeled" Label on any of their
    rows, biggest first.

    One GROUP BY over interactions LEFT JOIN labels (an aggregate, so one pass whatever the
    number of patterns); ties by hash so the lane is deterministic.
    """
    # The GROUP BY reads every row of the project (~0.5 s on 1M rows on a busy 2-core box), and
    # its answer only changes when labels or interactions do: cache it under a fingerprint of
    # both that costs one aggregate over the (much smaller) label table plus an O(1) max(pk).
    labels = Label.objects.aggregate(n=Count("pk"), last_pk=Max("pk"), last=Max("updated_at"))
    last_interaction = Interaction.objects.aggregate(last_pk=Max("pk"))["last_pk"]
    key = "queue:unlabeled-patterns:" + ":".join(
        str(part)
        for part in (
            project.pk,
            project.created_at.timestamp(),
            labels["n"],
            labels["last_pk"],
            labels["last"].timestamp() if labels["last"] else None,
            last_interaction,
            limit,
        )
    )
    found = cache.get(key)
    if found is None:
        found = list(
            Interaction.objects.filter(project=project)
            .values("pattern_hash")
            .annotate(
                rows=Count("pk"),
                labeled=Count("label", filter=Q(label__status=Label.Status.LABELED)),
            )
            .filter(labeled=0)
            .order_by("-rows", "pattern_hash")
            .values_list("pattern_hash", "rows")[:limit]
        )
        cache.set(key, found, UNLABELED_PATTERNS_CACHE_S)
    return found


def _unseen_pattern_lane(
    *,
    project: Project,
    user: AbstractBaseUser,
    filters: QueueFilters,
    model_version: ModelVersion,
    slots: int,
) -> list[QueueItem]:
    """One row (the most uncertain that passes filters and exclusions) per unlabeled pattern,
    biggest pattern first, at most `slots` rows. Read-only."""
    if slots <= 0:
        return []
    lane: list[tuple[int, QueueItem]] = []
    for pattern, size in _unlabeled_patterns(project, limit=slots * UNSEEN_PATTERN_TRIES_PER_SLOT):
        pred = _prediction_rows(
            project=project,
            user=user,
            filters=filters,
            model_version=model_version,
            cursor=None,
            pattern_hash=pattern,
        ).first()
        if pred is not None:
            lane.append((size, _item_from_prediction(pred)))
            if len(lane) == slots:
                break
    # Biggest pattern first; equal sizes by uncertainty (the queue's own order).
    lane.sort(key=lambda pair: (-pair[0], _sort_key(pair[1])))
    return [item for _, item in lane]
