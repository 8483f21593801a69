"""The review queue: which interactions a reviewer sees, in which order, one page at a time.

Order: most uncertain first, i.e. lowest calibrated confidence of the ACTIVE model version, ties
by smallest margin, then id. Pagination is keyset (never OFFSET): the cursor is the
(confidence, margin, id) of the last row of a page, so a deep page costs what the first one does
(an index range scan on Prediction(model_version, confidence, ...)).

Spread: the model sees blinded text, so every interaction of one sentence pattern gets the same
prediction and the lowest-confidence pattern would fill whole pages. A page is therefore built
from a bounded candidate window (the next `page_size * SPREAD_WINDOW_FACTOR` rows in queue order)
with at most `per_pattern` rows per pattern, interleaved round-robin; if the window holds too
few patterns the page is topped up in queue order. Rows of a pattern deferred past a deep
page's cursor come back on the first page once the rows above them are reviewed; the "next item"
flow always starts from the top, so no item is lost to review.

Unseen-pattern lane (first spread page only): when the model is confidently wrong on a whole
sentence pattern (its calibrated confidences can saturate at 1.0), uncertainty order ranks that
pattern thousands deep and no amount of reviewing "the most uncertain" reaches it. A label on a
pattern that has no label yet is the most informative one a reviewer can give (coverage /
diversity sampling), so the first page reserves up to `ceil(page_size * UNSEEN_PATTERN_SHARE)`
slots for patterns with NO Label of status "labeled" (seed, import or review) on any of their
interactions in the project: one row per such pattern (its most uncertain row that passes the
filters and exclusions), biggest pattern (rows affected) first, then by uncertainty. The rest of
the page is the usual uncertainty spread (a lane row counts toward its pattern's cap; no
duplicates). Later (cursor) pages keep plain keyset order but recompute the lane and leave its
rows out, so a row is never shown twice while the data stands still. The "next item" claim flow
(`list_next_queue_items`) is strict uncertainty order and has no lane. Cost: one GROUP BY over
the project's interactions LEFT JOIN labels (cached until a label or interaction changes) plus
one small indexed query per lane pattern (measured on 1M rows in PostgreSQL: see
bench/review_queue.py).

Without an active model version the queue is every interaction in id order (no lane).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet
from django.utils import timezone

from annotations.models import (
    Interaction,
    Label,
    LabelEvent,
    ModelVersion,
    Prediction,
    Project,
    ReviewClaim,
    ReviewSkip,
    ReviewTask,
)
from annotations.selectors.blind import list_answered_tasks, open_blind_task
from annotations.selectors.versions import get_serving_model_version

DEFAULT_PAGE_SIZE = 25
SPREAD_WINDOW_FACTOR = 8
DEFAULT_PER_PATTERN = 3
# Share of the first spread page reserved for patterns nobody has labeled yet (see module doc).
UNSEEN_PATTERN_SHARE = 0.5
# At most this many unlabeled patterns are tried per lane slot (a pattern may have no row that
# passes the filters); bounds the per-pattern queries.
UNSEEN_PATTERN_TRIES_PER_SLOT = 3
# The unlabeled-pattern list is cached under a fingerprint of the label and interaction tables;
# the timeout only bounds staleness after bulk `QuerySet.update()`s that skip `updated_at`.
UNLABELED_PATTERNS_CACHE_S = 300


@dataclass(frozen=True)
class QueueFilters:
    """What the reviewer narrowed the queue to (all optional; unreviewed-only by default)."""

    predicted_class: str = ""
    min_confidence: float | None = None
    max_confidence: float | None = None
    unreviewed_only: bool = True
    disagrees_with_rule: bool = False
    drug: str = ""
    text: str = ""
    source: str = ""
    # One of selectors/consistency.KINDS: only the items that check lists.
    consistency: str = ""


@dataclass(frozen=True)
class QueueCursor:
    """Keyset position: the sort key of the last row shown (confidence/margin None: no model)."""

    confidence: float | None
    margin: float | None
    interaction_id: int

    def encode(self) -> str:
        if self.confidence is None:
            return f"id:{self.interaction_id}"
        return f"{self.confidence!r}:{self.margin!r}:{self.interaction_id}"

    @classmethod
    def decode(cls, raw: str | None) -> QueueCursor | None:
        """Parse a cursor from a query string; a malformed one means 'from the start'."""
        if not raw:
            return None
        parts = raw.split(":")
        try:
            if len(parts) == 2 and parts[0] == "id":
                cursor = cls(None, None, int(parts[1]))
            elif len(parts) == 3:
                cursor = cls(float(parts[0]), float(parts[1]), int(parts[2]))
            else:
                return None
        except ValueError:
            return None
        # Out of range for the database (an id past 64 bits, inf/nan) is malformed too.
        if not 0 <= cursor.interaction_id < 2**63 or not all(
            math.isfinite(v) for v in (cursor.confidence, cursor.margin) if v is not None
        ):
            return None
        return cursor


@dataclass(frozen=True)
class QueueItem:
    interaction: Interaction
    predicted_class: str = ""
    confidence: float | None = None
    margin: float | None = None
    probabilities: list[float] = field(default_factory=list)

    @property
    def cursor(self) -> QueueCursor:
        return QueueCursor(self.confidence, self.margin, self.interaction.pk)


@dataclass(frozen=True)
class QueuePage:
    items: list[QueueItem]
    next_cursor: str | None
    model_version: ModelVersion | None


def _interaction_filters(
    *, project: Project, user: AbstractBaseUser, filters: QueueFilters, prefix: str
) -> Q:
    """Conditions on the interaction side, written relative to `prefix` ("" or "interaction__")."""
    p = prefix
    q = Q(**{f"{p}project": project})
    if filters.drug:
        drug = filters.drug.strip()
        q &= Q(**{f"{p}drug_a__iexact": drug}) | Q(**{f"{p}drug_b__iexact": drug})
    if filters.text:
        q &= Q(**{f"{p}description__icontains": filters.text.strip()})
    if filters.source:
        q &= Q(**{f"{p}source_file": filters.source})
    if filters.consistency:
        from annotations.selectors.consistency import get_consistency_report

        ids = get_consistency_report(project=project).interaction_ids(filters.consistency)
        q &= Q(**{f"{p}pk__in": sorted(ids)})
    return q


def _exclusions(qs: QuerySet, *, user: AbstractBaseUser, filters: QueueFilters, id_field: str):
    """Drop reviewed (if asked), skipped-by-me and claimed-by-someone-else rows (NOT EXISTS)."""
    ref = OuterRef(id_field)
    if filters.unreviewed_only:
        qs = qs.exclude(Exists(Label.objects.filter(interaction_id=ref)))
    qs = qs.exclude(Exists(ReviewSkip.objects.filter(interaction_id=ref, user=user)))
    # Items the user holds blind are handed out by the blind hand-out only: listing them here
    # would show the model's answer (and a model filter would reveal it by the row's presence).
    qs = qs.exclude(
        Exists(
            ReviewTask.objects.filter(interaction_id=ref, assignee=user, answered_at__isnull=True)
        )
    )
    return qs.exclude(
        Exists(
            ReviewClaim.objects.filter(interaction_id=ref, expires_at__gte=timezone.now()).exclude(
                user=user
            )
        )
    )


def _rule_disagreement_ids(project: Project, model_version: ModelVersion | None) -> QuerySet:
    # Imported here: the rules selector is another engineer's module and optional for the queue.
    from annotations.selectors.rules import interactions_disagreeing_with_rules

    return interactions_disagreeing_with_rules(project=project, model_version=model_version).values(
        "id"
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
    for rank in range(per_pattern):
        for pattern, rows in groups.items():
            fits = rank < len(rows) and rank + used.get(pattern, 0) < per_pattern
            if fits and len(picked) < page_size:
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


def _item_from_prediction(pred: Prediction) -> QueueItem:
    return QueueItem(
        interaction=pred.interaction,
        predicted_class=pred.predicted_class,
        confidence=pred.confidence,
        margin=pred.margin,
        probabilities=list(pred.probabilities),
    )


def get_review_queue_page(
    *,
    project: Project,
    user: AbstractBaseUser,
    filters: QueueFilters | None = None,
    cursor: QueueCursor | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    spread: bool = True,
    per_pattern: int = DEFAULT_PER_PATTERN,
) -> QueuePage:
    """One page of the review queue for `user` (read-only).

    With `spread` and an active model the page also carries the unseen-pattern lane (first page
    only; later pages leave the lane's rows out): see the module docstring.
    """
    filters = filters or QueueFilters()
    model_version = get_serving_model_version(project=project)
    window = page_size * SPREAD_WINDOW_FACTOR if spread else page_size
    lane: list[QueueItem] = []
    if spread and model_version is not None:
        lane = _unseen_pattern_lane(
            project=project,
            user=user,
            filters=filters,
            model_version=model_version,
            # At least one slot stays with uncertainty order, so a page always moves the cursor.
            slots=min(math.ceil(page_size * UNSEEN_PATTERN_SHARE), page_size - 1),
        )
    if model_version is None:
        rows = list(
            _interaction_rows(project=project, user=user, filters=filters, cursor=cursor)[
                : window + 1
            ]
        )
        candidates = [QueueItem(interaction=row) for row in rows[:window]]
        has_more = len(rows) > window
    else:
        preds = list(
            _prediction_rows(
                project=project,
                user=user,
                filters=filters,
                model_version=model_version,
                cursor=cursor,
            )[: window + 1]
        )
        candidates = [_item_from_prediction(pred) for pred in preds[:window]]
        has_more = len(preds) > window
    lane_ids = {item.interaction.pk for item in lane}
    if cursor is not None:
        # A later page: the lane was shown on the first page; keyset order for the rest.
        candidates = [item for item in candidates if item.interaction.pk not in lane_ids]
        lane = []
    if spread:
        items = _spread(candidates, page_size=page_size, per_pattern=per_pattern, already=lane)
    else:
        items = candidates[:page_size]
    if not items:
        return QueuePage(items=[], next_cursor=None, model_version=model_version)
    # The cursor follows the uncertainty-ordered rows only: lane rows sit outside keyset order.
    ordered = [item for item in items if item.interaction.pk not in lane_ids]
    if not ordered:
        # The lane leaves at least one slot, so a lane-only page means nothing else is left.
        return QueuePage(items=items, next_cursor=None, model_version=model_version)
    last = max(ordered, key=_sort_key)
    more_in_window = any(
        _sort_key(item) > _sort_key(last) and item.interaction.pk not in lane_ids
        for item in candidates
    )
    next_cursor = last.cursor.encode() if (has_more or more_in_window) else None
    return QueuePage(items=items, next_cursor=next_cursor, model_version=model_version)


def _sort_key(item: QueueItem) -> tuple:
    if item.confidence is None:
        return (0.0, 0.0, item.interaction.pk)
    return (item.confidence, item.margin, item.interaction.pk)


def list_next_queue_items(
    *,
    project: Project,
    user: AbstractBaseUser,
    filters: QueueFilters | None = None,
    exclude_ids: frozenset[int] = frozenset(),
    limit: int = 10,
) -> list[QueueItem]:
    """The first few items of the queue in strict order (candidates for the reviewer's claim)."""
    page = get_review_queue_page(
        project=project,
        user=user,
        filters=filters,
        page_size=limit + len(exclude_ids),
        spread=False,
    )
    return [item for item in page.items if item.interaction.pk not in exclude_ids][:limit]


@dataclass(frozen=True)
class ReviewItem:
    """Everything the review page shows about one interaction."""

    interaction: Interaction
    label: Label | None
    prediction: Prediction | None
    class_probabilities: list[tuple[int, str, float | None]]  # (key digit, class, probability)
    history: list[LabelEvent]
    # The user's open blind row on it: set, the page shows neither the label, the model, nor
    # the history (label/prediction/history are then empty, not just hidden by the template).
    blind_task: ReviewTask | None = None
    # Answered blind rows (second opinions, audit), shown with whether they agreed.
    blind_answers: list[ReviewTask] = field(default_factory=list)

    @property
    def is_blind(self) -> bool:
        return self.blind_task is not None


def get_review_item(
    *, interaction: Interaction, user: AbstractBaseUser | None = None, history_limit: int = 50
) -> ReviewItem:
    """The label, the active model's prediction and the label history of one interaction.

    For a `user` blind on it (selectors/blind.py) only the sentence and the class list come
    back: the label, prediction, probabilities and history are left out.
    """
    project = interaction.project
    blind_task = open_blind_task(user, interaction)
    if blind_task is not None:
        return ReviewItem(
            interaction=interaction,
            label=None,
            prediction=None,
            class_probabilities=[
                (index + 1, name, None) for index, name in enumerate(project.label_classes)
            ],
            history=[],
            blind_task=blind_task,
        )
    label = Label.objects.select_related("author").filter(interaction=interaction).first()
    model_version = get_serving_model_version(project=project)
    prediction = (
        Prediction.objects.filter(interaction=interaction, model_version=model_version).first()
        if model_version
        else None
    )
    classes = list(project.label_classes)
    probabilities = list(prediction.probabilities) if prediction else []
    class_probabilities = [
        (index + 1, name, probabilities[index] if index < len(probabilities) else None)
        for index, name in enumerate(classes)
    ]
    history = list(
        LabelEvent.objects.filter(interaction=interaction)
        .select_related("actor")
        .order_by("-id")[:history_limit]
    )
    return ReviewItem(
        interaction=interaction,
        label=label,
        prediction=prediction,
        class_probabilities=class_probabilities,
        history=history,
        blind_answers=list_answered_tasks(interaction),
    )


def count_queue_items(
    *,
    project: Project,
    user: AbstractBaseUser,
    filters: QueueFilters | None = None,
    cap: int = 10_000,
) -> int:
    """How many queue items are left for `user` under `filters`, counted up to `cap` (a LIMIT
    inside the COUNT, so a big queue costs what `cap` rows do). Read-only."""
    filters = filters or QueueFilters()
    model_version = get_serving_model_version(project=project)
    if model_version is None:
        qs = _interaction_rows(project=project, user=user, filters=filters, cursor=None)
    else:
        qs = _prediction_rows(
            project=project, user=user, filters=filters, model_version=model_version, cursor=None
        )
    return qs.order_by()[:cap].count()
