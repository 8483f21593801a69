"""The audit's estimate: per-stratum results and the stratified accuracy with its Jeffreys /
Brown-Cai-DasGupta interval (see the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from annotations.audit_stats.sampling import LEVEL


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
