"""Agreement rates with Wilson intervals, and the rubber-stamp check (assisted vs blind)."""

from __future__ import annotations

from dataclasses import dataclass

from annotations.audit_stats.sampling import LEVEL


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
