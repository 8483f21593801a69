"""The audit's statistics on synthetic data with a known answer (no database)."""

from __future__ import annotations

import math
from collections import defaultdict

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
        top: (100_000, [True] * 380),  # certified at 1 % (two classes: 368 needed)
        mid: (5_000, [True] * 390),  # certified at 1 %
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
    # Each class runs its own sequence, so each gets delta / 2 (Bonferroni): 368 items.
    assert stats.items_needed(0.01, classes=2) == 368
    assert by_class["Ant"].threshold is None and "at least 368" in by_class["Ant"].note


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


def test_plan_takes_patterns_as_large_as_the_step_whole_and_keeps_items_for_the_rest():
    # 1,000 rows: one pattern of 600, one of 300, 100 single rows; 10 items, step 100.
    sizes = [600, 300] + [1] * 100
    plan = stats.plan_stratum(sizes, 10)
    assert plan == {0: 1, 1: 1}  # the two big patterns, one item each; 8 items for the rest
    # Free text (every cluster one row): nothing is taken whole until the census.
    assert stats.plan_stratum([1] * 50, 10) == {}
    assert sorted(stats.plan_stratum([1] * 5, 10)) == [0, 1, 2, 3, 4]
    # Patterns cover the stratum: spare items go to them by size, capped by their rows.
    plan = stats.plan_stratum([90, 9, 1], 20)
    assert sum(plan.values()) == 20 and plan[0] > plan[1] >= 1 and plan[2] == 1
    # At least one item stays for rows outside the patterns taken whole.
    assert stats.plan_stratum([500, 10], 1) == {}


def test_a_cluster_is_known_when_its_answers_agree_and_sampled_when_they_do_not():
    known = stats.cluster_result("a#0", 500, [True, True])
    assert (known.answered, known.correct, known.items) == (500, 500, 2)
    split = stats.cluster_result("a#1", 500, [True, False])
    assert (split.size, split.answered, split.correct) == (500, 2, 1)
    est = stats.estimate_accuracy(
        stats.stratum_results("a", 0, [], [(500, [True]), (300, [False])])
        + stats.stratum_results("b", 200, [True] * 20, [])
    )
    assert est.audited == 22 and est.low <= 700 / 1000 <= est.high
    assert est.value == pytest.approx(0.5 + 0.2)  # 500 known right, 300 known wrong, b all right


def _simulate_clusters(rng, audits=200, n=150):
    """A templated population: 40 patterns of Zipf-like sizes, each all right or all wrong,
    in strata by a noisy confidence; plus 3,000 free-text rows right with probability 0.9."""
    sizes = np.maximum((20_000 / np.arange(1, 41) ** 1.1).astype(int), 20)
    right = rng.random(40) > 0.1
    band = np.where(right, 6, rng.integers(3, 7, size=40))
    rows_by_stratum: dict[str, list[tuple[int, int, bool]]] = defaultdict(list)
    for p in range(40):
        rows_by_stratum[str(band[p])].append((p, int(sizes[p]), bool(right[p])))
    free = rng.random(3_000) < 0.9
    truth = (sizes[right].sum() + free.sum()) / (sizes.sum() + free.size)
    covered, widths, plain_widths = 0, [], []
    keys = [*sorted(rows_by_stratum), "free"]
    clusters = [[s for _, s, _ in rows_by_stratum[k]] for k in keys[:-1]] + [[1] * free.size]
    totals = [sum(c) for c in clusters]
    for d in range(audits):
        for use_clusters, out in ((True, widths), (False, plain_widths)):
            alloc = stats.allocate(
                totals, [0.05] * len(keys), n, clusters=clusters if use_clusters else None
            )
            results = []
            for k, take in zip(keys, alloc, strict=True):
                if k == "free":
                    picked = free[rng.permutation(free.size)[:take]]
                    results.append(stats.StratumResult(k, free.size, take, int(picked.sum())))
                    continue
                members = rows_by_stratum[k]
                plan = stats.plan_stratum([s for _, s, _ in members], take) if use_clusters else {}
                rest = np.concatenate(
                    [np.full(s, r) for i, (_, s, r) in enumerate(members) if i not in plan] or [[]]
                ).astype(bool)
                picked = rest[rng.permutation(rest.size)[: take - sum(plan.values())]]
                got = [(members[i][1], [members[i][2]] * c) for i, c in sorted(plan.items())]
                results += stats.stratum_results(k, rest.size, picked.tolist(), got)
            est = stats.estimate_accuracy(results, seed=d, draws=2000)
            if use_clusters:
                covered += est.low <= truth <= est.high
            out.append(est.high - est.low)
    return covered / audits, float(np.mean(widths)), float(np.mean(plain_widths))


def test_taking_patterns_whole_keeps_coverage_and_narrows_the_interval():
    coverage, width, plain = _simulate_clusters(np.random.default_rng(5))
    assert coverage >= 0.93
    assert width < 0.7 * plain, (width, plain)
