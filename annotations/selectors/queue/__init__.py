"""The review queue: which interactions a reviewer sees, in which order, one page at a time.

Order: most uncertain first, i.e. lowest calibrated confidence of the ACTIVE model version, ties
by smallest margin, then id. Pagination is keyset (never OFFSET): the cursor is the
(confidence, margin, id) of the last row of a page, so a deep page costs what the first one does
(an index range scan on Prediction(model_version, confidence, ...)).

Spread: the model sees blinded text, so every interaction of one sentence pattern gets the same
prediction and the lowest-confidence pattern would fill whole pages. A page is therefore built
from a bounded candidate window (the next `page_size * SPREAD_WINDOW_FACTOR` rows in queue order)
with at most `per_pattern` rows per pattern, interleaved round-robin; if the window holds too
few patterns the page is topped up in queue order. A page is only as diverse as its window,
and on templated text a few big patterns can fill the whole window (the full DrugBank set: the
most uncertain patterns hold hundreds of rows each), so the FIRST page is also given pattern
leaders: while the lane and the window hold fewer than `page_size` distinct patterns, the most
uncertain row of each next pattern (one query per missing pattern at most, each skipping every
pattern found so far). Leaders follow the window's first rows on the page and, like the lane,
sit outside keyset order; later pages leave them out. Rows of a pattern deferred past a deep
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

Layout: filters.py (what a page is asked for and made of), rows.py (candidate rows, spread),
unseen.py (the lane), page.py (pages, next items, count), item.py (one review item).
"""

from annotations.selectors.queue.filters import QueueCursor, QueueFilters, QueueItem, QueuePage
from annotations.selectors.queue.item import ReviewItem, get_review_item
from annotations.selectors.queue.page import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_PER_PATTERN,
    SPREAD_WINDOW_FACTOR,
    count_queue_items,
    get_review_queue_page,
    list_next_queue_items,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_PER_PATTERN",
    "SPREAD_WINDOW_FACTOR",
    "QueueCursor",
    "QueueFilters",
    "QueueItem",
    "QueuePage",
    "ReviewItem",
    "count_queue_items",
    "get_review_item",
    "get_review_queue_page",
    "list_next_queue_items",
]
