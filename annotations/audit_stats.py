"""The statistics of the blind audit: how to draw it, what it says about the unreviewed labels,
and which of them may be accepted at a chosen error rate. Plain NumPy/SciPy/MAPIE, no Django.

The population is the rows whose final label comes from the model (or, in a separate audit, from
rules) and that no person reviewed. The audit draws a stratified random sample from it:

- Strata are (predicted class, confidence band). Bands follow the calibrated confidence, so
  the few rows the model is unsure of (where the errors are) form small strata of their own.
- Allocation minimises the expected width of the interval below: items go one by one to the
  stratum where one more answer shrinks the weighted posterior variance most, with each stratum's
  error rate guessed from the confidence but its variance never below ``SD_FLOOR`` squared. A big
  stratum the model calls safe therefore still gets many items (its interval shrinks only as
  1/n when no error turns up), and if the confidence lies (a band claimed 99.9 % right that is
  not) that band is sampled anyway, so the audit works whatever the scores are; the intervals
  just get wider. (Plain Neyman allocation, ``method="neyman"``, is kept for the benchmark: it
  starves exactly those big confident strata.)
- Within a stratum, rows are grouped by blinded sentence (a *cluster*: the rows the model cannot
  tell apart, since it sees only that sentence). A cluster at least as large as the sampling
  step (rows left / items left) is taken with certainty: one item, whose answer stands for every
  row of the cluster (``plan_stratum``). That rests on one assumption, stated wherever the
  estimate is shown: rows with the same blinded sentence have the same right class (the model
  gives them the same class and confidence anyway; the consistency page lists texts whose human
  labels disagree). On free text every cluster is one row and nothing changes.
- The rest of the stratum is drawn systematically in sentence-pattern order from a random start
  (implicit stratification by pattern). Each of its rows has inclusion probability
  n'_h / N'_h (items and rows left after the certainty clusters), recorded with the item.

The estimate is the stratified (inverse-probability-weighted) mean, sum_h (N_h / N) x_h / n_h,
with each answered certainty cluster a stratum of its own, known in full,
with a Bayesian interval that is also a good frequentist one: each stratum's accuracy gets the
Jeffreys posterior Beta(x + 1/2, n - x + 1/2) and the interval is the 2.5-97.5 % quantiles of the
weighted sum (Monte Carlo), with Brown, Cai and DasGupta's boundary modification (a stratum with
no error in its sample counts at 1 for the upper bound, one with no right answer at 0 for the
lower), so a perfect population is covered. Unlike the Wald interval it does not collapse to zero
width when a stratum has no errors in its sample. Coverage and width: bench/audit.py.

Auto-accept uses Learn-then-Test from MAPIE (``mapie.risk_control``): for each class, bands are
tested from the most confident down (fixed-sequence testing), each band's audited items being a
simple random sample of that band; a band is accepted while MAPIE certifies precision >= 1 - alpha
at confidence 1 - delta / C (C classes: a Bonferroni split, since each class runs its own
sequence). The error among all accepted rows is a weighted mean of the accepted bands' errors, so
it is <= alpha with probability >= 1 - delta.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# Confidence band edges (lower bounds); a row belongs to the last edge <= its confidence.
BAND_EDGES: tuple[float, ...] = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
SD_FLOOR = 0.1
MIN_PER_STRATUM = 2
DEFAULT_AUDIT_SIZE = 150
LEVEL = 0.95
DELTA = 0.05


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


@dataclass(frozen=True)
class StratumResult:
    """One stratum of an audit: its population size, items answered and how many were right."""

    key: str
    size: int
    answered: int
    correct: int
    items: int | None = None  # audit items behind `answered` when it counts rows (a cluster)


def cluster_result(key: str, rows: int, answers: Sequence[bool]) -> StratumResult:
    """A certainty cluster as a stratum. Answers that agree make it known in full (the
    assumption above); answers that disagree refute the assumption for this cluster, which then
    counts as a simple random sample of its rows (Jeffreys interval); none leave it unknown."""
    answers = [bool(a) for a in answers]
    if answers and len(set(answers)) == 1:
        return StratumResult(key, rows, rows, rows if answers[0] else 0, items=len(answers))
    return StratumResult(key, rows, len(answers), sum(answers))


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


@dataclass
class Estimate:
    value: float | None
    low: float | None
    high: float | None
    audited: int
    population: int
    strata_missing: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "audited": self.audited,
            "population": self.population,
            "strata_missing": self.strata_missing,
            "warnings": list(self.warnings),
        }


def estimate_accuracy(
    strata: Sequence[StratumResult], level: float = LEVEL, draws: int = 20000, seed: int = 0
) -> Estimate:
    """Stratified estimate of the population accuracy with a Jeffreys Monte Carlo interval.

    A stratum of the population with no answered item yet is counted at the worst case and the
    best case (0 and 1) for the interval bounds, and at the Jeffreys prior mean 0.5 for the point
    estimate, so a half-done audit gives an honest, wide interval rather than a biased one.
    """
    population = int(sum(s.size for s in strata))
    audited = int(sum(s.answered if s.items is None else s.items for s in strata))
    if population == 0 or audited == 0:
        return Estimate(None, None, None, audited, population)
    rng = np.random.default_rng(seed)
    sizes = np.asarray([s.size for s in strata])
    weights = sizes / population
    answered = np.asarray([s.answered for s in strata])
    correct = np.asarray([s.correct for s in strata])
    seen = answered > 0
    n, x, w = answered[seen], correct[seen], weights[seen]
    samples = rng.beta(x + 0.5, n - x + 0.5, size=(draws, int(seen.sum())))
    exact = x / n
    census = n >= sizes[seen]  # a stratum answered in full is known exactly
    samples[:, census] = exact[census]
    # Boundary modification: no error seen -> 1 for the upper bound; no right answer -> 0 low.
    upper, lower = samples.copy(), samples.copy()
    upper[:, (x == n) & ~census] = 1.0
    lower[:, (x == 0) & ~census] = 0.0
    missing = weights[~seen].sum()
    tail = (1.0 - level) / 2.0
    point = float(exact @ w + 0.5 * missing)  # inverse-probability weighted (unbiased)
    low = float(np.quantile(lower @ w, tail))
    high = float(np.quantile(upper @ w, 1.0 - tail) + missing)
    notes = []
    if (~seen).any():
        notes.append(
            f"{int((~seen).sum())} of {len(strata)} strata or clusters have no answered item yet "
            f"({missing:.1%} of the rows): counted as unknown, so the interval is wide."
        )
    return Estimate(point, low, min(high, 1.0), audited, population, int((~seen).sum()), notes)


def check_alpha(alpha: float) -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError) as exc:
        raise AuditInputError(f"The target error rate must be a number, not {alpha!r}.") from exc
    if not (0.0 < value < 0.5) or math.isnan(value):
        raise AuditInputError(
            f"The target error rate must lie strictly between 0 and 0.5 (e.g. 0.01 for 1 %); "
            f"got {value}."
        )
    return value


def items_needed(alpha: float, delta: float = DELTA, classes: int = 1) -> int:
    """Audited items with no error a band needs before it can be certified at `alpha`."""
    delta = delta / max(1, classes)
    return math.ceil(math.log(delta) / math.log(1.0 - alpha))


def _band_certified(correct: np.ndarray, alpha: float, delta: float) -> tuple[bool, float]:
    """MAPIE Learn-then-Test for one band: is precision >= 1 - alpha at confidence 1 - delta?"""
    from mapie.risk_control import BinaryClassificationController

    if len(correct) == 0:
        return False, 1.0
    controller = BinaryClassificationController(
        predict_function=lambda x: np.column_stack([1.0 - x[:, 0], x[:, 0]]),
        risk="precision",
        target_level=1.0 - alpha,
        confidence_level=1.0 - delta,
        list_predict_params=np.asarray([0.0]),  # every audited row of the band is "accepted"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MAPIE warns when nothing can be certified
        controller.calibrate(np.ones((len(correct), 1)), np.asarray(correct, dtype=int))
    p_value = float(np.asarray(controller.p_values).ravel()[0])
    return len(controller.valid_predict_params) > 0, p_value


@dataclass
class ClassThreshold:
    predicted_class: str
    threshold: float | None  # lowest accepted confidence; None when no band is certified
    bands_accepted: list[int]
    rows_accepted: int
    rows: int
    note: str


def auto_accept_thresholds(
    strata: dict[str, tuple],
    classes: Sequence[str],
    alpha: float,
    delta: float = DELTA,
) -> list[ClassThreshold]:
    """Per class, the lowest band edge down to which every band is certified at `alpha`.

    `strata` maps stratum_key -> (rows drawn at random, their audited answers as
    correct/incorrect[, certainty clusters as (rows, their answers)]). A band is certified
    when MAPIE certifies its randomly drawn part (or it has none) and every certainty cluster in
    it was answered, and answered right every time: those rows are known, so they add no error
    to the accepted rows.
    """
    alpha = check_alpha(alpha)
    delta = delta / max(1, len(classes))  # one sequence per class: Bonferroni over classes

    def parts(key):
        size, answers, *rest = strata[key]
        return int(size), list(answers), list(rest[0]) if rest else []

    def rows_of(key):
        size, _, clusters = parts(key)
        return size + sum(int(r) for r, _ in clusters)

    out = []
    for name in classes:
        bands = sorted(
            (parse_stratum(key)[1], key) for key in strata if parse_stratum(key)[0] == name
        )
        rows = sum(rows_of(key) for _, key in bands)
        accepted: list[int] = []
        note = ""
        for band, key in reversed(bands):  # most confident first: fixed-sequence testing
            size, answers, clusters = parts(key)
            if rows_of(key) == 0:
                continue
            unsure = [r for r, got in clusters if not got or not all(got)]
            if unsure:
                note = (
                    f"band {band_label(band)} not certified: {len(unsure)} sentence pattern(s) "
                    f"of {sum(unsure):,} rows audited wrong or not answered yet"
                )
                break
            if size:
                ok, p_value = _band_certified(np.asarray(answers, dtype=bool), alpha, delta)
                if not ok:
                    wrong = int(len(answers) - np.sum(answers))
                    note = (
                        f"band {band_label(band)} not certified: {len(answers)} audited, {wrong} "
                        f"wrong (p = {p_value:.3f}; a band needs at least "
                        f"{items_needed(alpha, delta)} audited items without error at this error "
                        "rate)"
                    )
                    break
            accepted.append(band)
        rows_accepted = sum(rows_of(stratum_key(name, b)) for b in accepted)
        threshold = BAND_EDGES[min(accepted)] if accepted else None
        out.append(ClassThreshold(name, threshold, accepted, rows_accepted, rows, note))
    return out


@dataclass
class Agreement:
    agreed: int
    total: int
    low: float | None
    high: float | None

    @property
    def rate(self) -> float | None:
        return self.agreed / self.total if self.total else None


def wilson(successes: int, n: int, level: float = LEVEL) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (SciPy's binomtest); None without observations.

    Honest for small n and for rates near 0 or 1, where the normal approximation is not.
    """
    if n <= 0:
        return None
    from scipy.stats import binomtest

    interval = binomtest(successes, n).proportion_ci(confidence_level=level, method="wilson")
    return float(interval.low), float(interval.high)


def agreement(agreed: int, total: int, level: float = LEVEL) -> Agreement:
    """Agreement rate with a Wilson interval."""
    if total == 0:
        return Agreement(0, 0, None, None)
    low, high = wilson(agreed, total, level)
    return Agreement(agreed, total, low, high)


RUBBER_STAMP_GAP = 0.15
RUBBER_STAMP_MIN_BLIND = 5


def rubber_stamp(blind: Agreement, assisted: Agreement) -> bool:
    """Does a reviewer agree with the model far more often when its answer is visible?

    Flagged when assisted agreement exceeds blind agreement by RUBBER_STAMP_GAP or more and the
    two Wilson intervals do not overlap (so it is not noise), with enough blind items to judge.
    """
    if blind.total < RUBBER_STAMP_MIN_BLIND or assisted.total < RUBBER_STAMP_MIN_BLIND:
        return False
    return (assisted.rate - blind.rate) >= RUBBER_STAMP_GAP and assisted.low > blind.high


def stratum_results(
    key: str,
    rows: int,
    answers: Sequence[bool],
    clusters: Sequence[tuple[int, Sequence[bool]]] = (),
) -> list[StratumResult]:
    """One stratum's part drawn at random, and each of its certainty clusters, as results."""
    out = [StratumResult(key, int(rows), len(answers), int(sum(answers)))] if rows else []
    out += [cluster_result(f"{key}#{i}", n, got) for i, (n, got) in enumerate(clusters)]
    return out
