"""A review queue page (uncertainty spread, unseen-pattern lane, keyset cursor), the strict-order
list of the "next item" flow, and the count (the package docstring explains the order)."""

from __future__ import annotations

import math

from django.contrib.auth.models import AbstractBaseUser

from annotations.models import (
    Project,
)
from annotations.selectors.queue.filters import QueueCursor, QueueFilters, QueueItem, QueuePage
from annotations.selectors.queue.rows import (
    _interaction_rows,
    _item_from_prediction,
    _pattern_leaders,
    _prediction_rows,
    _sort_key,
    _spread,
)
from annotations.selectors.queue.unseen import UNSEEN_PATTERN_SHARE, _unseen_pattern_lane
from annotations.selectors.versions import get_serving_model_version

DEFAULT_PAGE_SIZE = 25
SPREAD_WINDOW_FACTOR = 8
DEFAULT_PER_PATTERN = 3


def get_review_queue_page(
    *,
    project: Project,
    user: AbstractBaseUser,
    filters: QueueFilters | None = None,
    cursor: QueueCursor | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    spread: bool = True,
    per_pattern: int = DEFAULT_PER_PATTERN,
    unseen_lane: bool = True,
) -> QueuePage:
    """One page of the review queue for `user` (read-only).

    With `spread` and an active model the page also carries the unseen-pattern lane (first page
    only; later pages leave the lane's rows out): see the module docstring. `unseen_lane=False`
    leaves the lane out (the loop bench measures what it adds).
    """
    filters = filters or QueueFilters()
    model_version = get_serving_model_version(project=project)
    window = page_size * SPREAD_WINDOW_FACTOR if spread else page_size
    lane: list[QueueItem] = []
    leaders: list[QueueItem] = []
    if spread and unseen_lane and model_version is not None:
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
        if spread:
            leaders = _first_page_leaders(
                project=project,
                user=user,
                filters=filters,
                model_version=model_version,
                page_size=page_size,
                window=window,
                lane=lane,
                first_window=candidates if cursor is None else None,
            )
    # Lane rows and pattern leaders sit outside keyset order (the cursor never follows them).
    lane_ids = {item.interaction.pk for item in (*lane, *leaders)}
    if cursor is not None:
        # A later page: both were shown on the first page; keyset order for the rest.
        candidates = [item for item in candidates if item.interaction.pk not in lane_ids]
        lane, leaders = [], []
    if spread:
        # Leaders come after the window's rows: round-robin gives every pattern of the window
        # its first row, then each leader, before any pattern's second row.
        items = _spread(
            [*candidates, *leaders], page_size=page_size, per_pattern=per_pattern, already=lane
        )
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


def _first_page_leaders(
    *,
    project: Project,
    user: AbstractBaseUser,
    filters: QueueFilters,
    model_version,
    page_size: int,
    window: int,
    lane: list[QueueItem],
    first_window: list[QueueItem] | None,
) -> list[QueueItem]:
    """The pattern leaders of the first page (see the package docstring): when the lane and the
    first candidate window hold fewer than `page_size` patterns, the most uncertain row of each
    next pattern. `first_window`: the first page's candidates (None on a later page, which reads
    them again to leave the same leaders out)."""
    if first_window is None:
        first_window = [
            _item_from_prediction(pred)
            for pred in _prediction_rows(
                project=project,
                user=user,
                filters=filters,
                model_version=model_version,
                cursor=None,
            )[:window]
        ]
    seen = {item.interaction.pattern_hash for item in (*lane, *first_window)}
    wanted = page_size - len(seen)
    if wanted <= 0 or len(first_window) < window:
        return []
    return _pattern_leaders(
        project=project,
        user=user,
        filters=filters,
        model_version=model_version,
        seen=seen,
        wanted=wanted,
        window=window,
    )


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
