"""Drawing the audit: confidence bands and strata, the allocation of items to strata, certainty
clusters and the systematic draw (see the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Confidence band edges (lower bounds); a row belongs to the last edge <= its confidence.
BAND_EDGES: tuple[float, ...] = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
SD_FLOOR = 0.1
MIN_PER_STRATUM = 2
DEFAULT_AUDIT_SIZE = 150
LEVEL = 0.95


class AuditInputError(ValueError):
    """A request the audit statistics cannot honour (the message says why)."""


def band_of(confidence: float) -> int:
    """Index of the confidence band `confidence` falls in."""
    band = 0
    for index, edge in enumerate(BAND_EDGES):
        if confidence >= edge:
            band = index
    return band


def band_label(band: int) -> str:
    low = BAND_EDGES[band]
    high = BAND_EDGES[band + 1] if band + 1 < len(BAND_EDGES) else 1.0
    closing = "]" if band + 1 == len(BAND_EDGES) else ")"
    return f"[{low:.2f}, {high:.2f}{closing}"


def stratum_key(predicted_class: str, band: int) -> str:
    return f"{predicted_class}|{band}"


def parse_stratum(key: str) -> tuple[str, int]:
    predicted_class, _, band = key.rpartition("|")
    return predicted_class, int(band)


def allocate(
    sizes: Sequence[int],
    expected_errors: Sequence[float],
    n: int,
    method: str = "width",
    clusters: Sequence[Sequence[int]] | None = None,
) -> list[int]:
    """Sample size per stratum, at least min(MIN_PER_STRATUM, N_h) each and never above N_h.

    `sizes` N_h and `expected_errors` (mean 1 - confidence in the stratum) per stratum; the
    result sums to min(n, sum N_h). method "width" (default): greedy minimum of the expected
    posterior variance of the weighted accuracy; "neyman": n_h proportional to N_h x SD.
    `clusters` (cluster sizes per stratum, see plan_stratum) lets "width" count the rows that
    certainty clusters make known.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(min(n, sizes.sum()))
    if total <= 0:
        return [0] * len(sizes)
    errors = np.clip(np.asarray(expected_errors, dtype=float), 0.0, 1.0)
    sd = np.maximum(np.sqrt(errors * (1.0 - errors)), SD_FLOOR)
    weight = sizes * sd
    low = np.minimum(sizes, MIN_PER_STRATUM)
    if low.sum() >= total:  # too few items for every minimum: round-robin, heaviest first
        alloc = np.zeros_like(sizes)
        order = [int(i) for i in np.argsort(-weight, kind="stable") if sizes[i] > 0]
        while alloc.sum() < total:
            for index in order:
                if alloc.sum() < total and alloc[index] < low[index]:
                    alloc[index] += 1
        return alloc.tolist()
    if method == "width":
        return _allocate_for_width(sizes, errors, low, total, clusters)
    # Neyman shares, with strata pushed below their minimum or above their size fixed there
    # and the rest shared again among the others (iterative capping).
    fixed = np.full(len(sizes), -1, dtype=np.int64)
    while True:
        free = fixed < 0
        left = total - fixed[~free].sum()
        mass = weight[free].sum()
        share = np.where(free, left * weight / mass, 0.0) if mass > 0 else np.zeros(len(sizes))
        under, over = free & (share < low), free & (share > sizes)
        if not (under.any() or over.any()):
            break
        fixed[under], fixed[over] = low[under], sizes[over]
    alloc = fixed.copy()
    alloc[free] = _largest_remainder(share[free], sizes[free], total - fixed[~free].sum())
    return alloc.tolist()


def _largest_remainder(share, cap, total: int) -> np.ndarray:
    """Whole numbers no larger than `cap` and summing to at most `total`: the floors of `share`,
    then one more each in order of the largest remainder (ties: the first)."""
    share, cap = np.asarray(share, dtype=float), np.asarray(cap)
    out = np.minimum(np.floor(share), cap).astype(np.int64)
    for index in np.argsort(-(share - out), kind="stable"):
        if out.sum() >= total:
            break
        if out[index] < cap[index]:
            out[index] += 1
    return out


def _allocate_for_width(sizes, errors, low, total: int, clusters=None) -> list[int]:
    """Greedy: each next item to the stratum whose expected posterior variance, weighted by
    (N_h / N)^2, drops most. A Jeffreys posterior after n answers with error guess e has
    variance about (e (1 - e) + 1 / (2 (n + 1))) / (n + 2): the second term is what is left
    when no error turns up, so confident strata keep earning items. With clusters, only the
    rows outside the certainty clusters of a k-item plan count (those clusters are known)."""
    population = sizes.sum()
    spread = np.maximum(errors * (1.0 - errors), SD_FLOOR**2)

    ordered = [sorted((int(c) for c in group), reverse=True) for group in clusters or []]
    prefix = [np.concatenate([[0], np.cumsum(group)]) for group in ordered]

    def variance(h: int, k: int) -> float:
        rows, items = int(sizes[h]), k
        if clusters is not None:
            certain = _certainty(ordered[h], k)
            rows -= int(prefix[h][certain])
            items -= certain
        if rows <= 0:
            return 0.0
        return (rows / population) ** 2 * (spread[h] + 0.5 / (items + 1.0)) / (items + 2.0)

    alloc = low.astype(np.int64).copy()
    current = [variance(h, int(alloc[h])) for h in range(len(sizes))]
    while alloc.sum() < total:
        gains = [
            current[h] - variance(h, int(alloc[h]) + 1) if alloc[h] < sizes[h] else -1.0
            for h in range(len(sizes))
        ]
        best = int(np.argmax(gains))
        if gains[best] <= 0.0:  # nothing left to learn (known clusters): spread by rows
            room = alloc < sizes
            best = int(np.argmax(np.where(room, sizes / (alloc + 1.0), -1.0)))
        alloc[best] += 1
        current[best] = variance(best, int(alloc[best]))
    return alloc.tolist()


def systematic_sample(count: int, take: int, rng: np.random.Generator) -> list[int]:
    """`take` positions out of `count` ordered items, one per interval from a random start.

    Every position has inclusion probability take / count exactly.
    """
    if take >= count:
        return list(range(count))
    if take <= 0:
        return []
    step = count / take
    start = rng.uniform(0.0, step)
    return [min(count - 1, math.floor(start + i * step)) for i in range(take)]


def plan_stratum(cluster_sizes: Sequence[int], take: int) -> dict[int, int]:
    """Clusters a stratum takes with certainty -> items drawn in each (biggest first).

    A cluster is taken with certainty when it is at least as large as the systematic step of
    what is left (rows left / items left), so a systematic draw would have hit it anyway; the
    remaining items are drawn systematically over the remaining rows. At least one item is kept
    for the remaining rows while any are left, so no part of the stratum goes unsampled. When
    certainty clusters cover the whole stratum, spare items go to them in proportion to their
    rows (largest remainder): a second answer in a cluster tests the assumption.
    """
    order = sorted(range(len(cluster_sizes)), key=lambda i: -cluster_sizes[i])
    certain = order[: _certainty([cluster_sizes[i] for i in order], take)]
    plan = dict.fromkeys(certain, 1)
    if not certain or sum(cluster_sizes[i] for i in certain) < sum(cluster_sizes):
        return plan
    rows = np.asarray([cluster_sizes[i] for i in certain], dtype=float)
    spare = min(int(take) - len(certain), int(rows.sum()) - len(certain))
    if spare > 0:
        extra = _largest_remainder(spare * rows / rows.sum(), rows - 1, spare)
        for index, more in zip(certain, extra, strict=True):
            plan[index] += int(more)
    return plan


def _certainty(sizes_desc: Sequence[int], take: int) -> int:
    """How many of the leading (largest) clusters plan_stratum takes with certainty."""
    rows_left, items_left, count = int(sum(sizes_desc)), int(take), 0
    for size in sizes_desc:
        size = int(size)
        if items_left <= 0 or size <= 0 or size * items_left < rows_left:
            break
        if rows_left - size > 0 and items_left < 2:
            break
        count, rows_left, items_left = count + 1, rows_left - size, items_left - 1
    return count
