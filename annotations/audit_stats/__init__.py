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

Layout: sampling.py (bands, strata, allocation, the draw), estimate.py (the estimate and its
interval), accept.py (auto-accept thresholds), agreement.py (agreement rates, rubber stamps).
"""

from annotations.audit_stats.accept import (
    DELTA,
    ClassThreshold,
    auto_accept_thresholds,
    check_alpha,
    items_needed,
)
from annotations.audit_stats.agreement import (
    RUBBER_STAMP_GAP,
    RUBBER_STAMP_MIN_BLIND,
    Agreement,
    agreement,
    rubber_stamp,
    wilson,
)
from annotations.audit_stats.estimate import (
    Estimate,
    StratumResult,
    cluster_result,
    estimate_accuracy,
    stratum_results,
)
from annotations.audit_stats.sampling import (
    BAND_EDGES,
    DEFAULT_AUDIT_SIZE,
    LEVEL,
    MIN_PER_STRATUM,
    SD_FLOOR,
    AuditInputError,
    allocate,
    band_label,
    band_of,
    parse_stratum,
    plan_stratum,
    stratum_key,
    systematic_sample,
)

__all__ = [
    "BAND_EDGES",
    "DEFAULT_AUDIT_SIZE",
    "DELTA",
    "LEVEL",
    "MIN_PER_STRATUM",
    "RUBBER_STAMP_GAP",
    "RUBBER_STAMP_MIN_BLIND",
    "SD_FLOOR",
    "Agreement",
    "AuditInputError",
    "ClassThreshold",
    "Estimate",
    "StratumResult",
    "agreement",
    "allocate",
    "auto_accept_thresholds",
    "band_label",
    "band_of",
    "check_alpha",
    "cluster_result",
    "estimate_accuracy",
    "items_needed",
    "parse_stratum",
    "plan_stratum",
    "rubber_stamp",
    "stratum_key",
    "stratum_results",
    "systematic_sample",
    "wilson",
]
