"""The audit's statistics on synthetic data with a known answer (no database)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from annotations import audit_stats as stats


def test_allocation_is_neyman_with_a_floor_and_a_minimum_per_stratum():
    # A big confident stratum and a small unsure one: the unsure one gets far more than its
    # share of rows, but the confident one is never starved (SD floor).
    sizes, errors = [180_000, 12_000], [0.0005, 0.45]
    alloc = stats.allocate(sizes, errors, 150)
    assert sum(alloc) == 150
    assert alloc[1] > 150 * 12_000 / 192_000 * 3  # unsure stratum: > 3x proportional
    assert alloc[0] >= 150 * 0.5  # floor: the confident stratum still gets half or more
    # Tiny strata get at least MIN_PER_STRATUM (or all of their rows), never more than N_h.
    alloc = stats.allocate([1, 5, 10_000], [0.0, 0.0, 0.0], 20)
    assert alloc[0] == 1 and alloc[1] >= stats.MIN_PER_STRATUM and sum(alloc) == 20
    assert stats.allocate([3, 4], [0.5, 0.5], 100) == [3, 4]


def test_uninformative_scores_give_proportional_allocation():
    # Every confidence 0.999 (the failure of the old app): the floor makes it (nearly)
    # proportional, so the audit is a plain random sample and still valid.
    assert stats.allocate([9_000, 1_000], [0.001, 0.001], 100, method="neyman") == [90, 10]
    alloc = stats.allocate([9_000, 1_000], [0.001, 0.001], 100)
    assert sum(alloc) == 100 and 80 <= alloc[0] <= 92


def test_systematic_sample_has_the_stated_inclusion_probability():
    rng = np.random.default_rng(0)
    count, take, rounds = 37, 5, 20_000
    hits = np.zeros(count)
    for _ in range(rounds):
        picked = stats.systematic_sample(count, take, rng)
        assert len(set(picked)) == take
        hits[picked] += 1
    assert np.allclose(hits / rounds, take / count, atol=0.02)


def _simulate(true_acc_by_stratum, sizes, n, audits, rng):
    strata_rows = [
        np.arange(size) < round(size * acc)
        for size, acc in zip(sizes, true_acc_by_stratum, strict=True)
    ]
    truth = sum(r.sum() for r in strata_rows) / sum(sizes)
    expected = [1 - a for a in true_acc_by_stratum]
    covered, widths = 0, []
    for d in range(audits):
        alloc = stats.allocate(sizes, expected, n)
        results = []
        for k, (rows, take) in enumerate(zip(strata_rows, alloc, strict=True)):
            picked = rows[rng.permutation(len(rows))[:take]]
            results.append(stats.StratumResult(str(k), len(rows), take, int(picked.sum())))
        est = stats.estimate_accuracy(results, seed=d, draws=4000)
        covered += est.low <= truth <= est.high
        widths.append(est.high - est.low)
    return truth, covered / audits, float(np.mean(widths))


def test_stratified_interval_covers_a_known_accuracy():
    rng = np.random.default_rng(1)
    truth, coverage, width = _simulate([0.999, 0.97, 0.5], [50_000, 5_000, 2_000], 150, 300, rng)
    assert coverage >= 0.93, (truth, coverage)
    assert width < 0.06


def test_point_estimate_is_unbiased_and_census_is_exact():
    results = [stats.StratumResult("a", 10, 10, 7), stats.StratumResult("b", 30, 30, 30)]
    est = stats.estimate_accuracy(results)
    assert est.value == pytest.approx(37 / 40)
    assert est.low == pytest.approx(37 / 40) and est.high == pytest.approx(37 / 40)


def test_a_stratum_without_answers_widens_the_interval_honestly():
    results = [stats.StratumResult("a", 900, 50, 50), stats.StratumResult("b", 100, 0, 0)]
    est = stats.estimate_accuracy(results)
    assert est.strata_missing == 1 and est.warnings
    assert est.low <= 0.9 and est.high >= 0.99  # b could be all wrong or all right
    assert stats.estimate_accuracy([stats.StratumResult("a", 5, 0, 0)]).value is None


@pytest.mark.parametrize("bad", [0, 0.5, -0.1, 1, "abc", float("nan"), None])
def test_alpha_outside_the_open_interval_is_refused_with_a_message(bad):
    with pytest.raises(stats.AuditInputError, match=r"between 0 and 0\.5|must be a number"):
        stats.check_alpha(bad)


def test_auto_accept_certifies_bands_from_the_top_and_stops_at_the_first_failure():
    needed = stats.items_needed(0.01)
    assert needed == math.ceil(math.log(0.05) / math.log(0.99)) == 299
    top, mid = stats.stratum_key("Syn", 6), stats.stratum_key("Syn", 5)
    low, other = stats.stratum_key("Syn", 2), stats.stratum_key("Ant", 6)
    table = {
        top: (100_000, [True] * 320),  # certified at 1 %
        mid: (5_000, [True] * 330),  # certified at 1 %
        low: (2_000, [True] * 20 + [False] * 10),  # not certified: the sequence stops here
        other: (50_000, [True] * 100),  # too few items for 1 %
    }
    by_class = {
        t.predicted_class: t for t in stats.auto_accept_thresholds(table, ["Syn", "Ant"], 0.01)
    }
    assert by_class["Syn"].bands_accepted == [6, 5]
    assert by_class["Syn"].threshold == stats.BAND_EDGES[5]
    assert by_class["Syn"].rows_accepted == 105_000
    assert "not certified" in by_class["Syn"].note
    assert by_class["Ant"].threshold is None and "at least 299" in by_class["Ant"].note


def test_auto_accept_never_accepts_a_band_whose_error_is_above_alpha():
    # 200 calibration draws of a band whose true error is 3 %: at alpha 1 % the band must be
    # refused in (nearly) every draw; the guarantee allows at most delta = 5 %.
    rng = np.random.default_rng(2)
    key = stats.stratum_key("Syn", 6)
    accepted = 0
    for _ in range(200):
        answers = (rng.random(400) >= 0.03).tolist()
        [t] = stats.auto_accept_thresholds({key: (10_000, answers)}, ["Syn"], 0.01)
        accepted += t.threshold is not None
    assert accepted / 200 <= 0.05


def test_rubber_stamp_needs_a_real_gap():
    blind = stats.agreement(12, 20)
    assisted = stats.agreement(95, 100)
    assert stats.rubber_stamp(blind, assisted)
    assert not stats.rubber_stamp(stats.agreement(18, 20), stats.agreement(95, 100))
    assert not stats.rubber_stamp(stats.agreement(1, 3), assisted)  # too few blind items
    assert stats.agreement(0, 0).rate is None
