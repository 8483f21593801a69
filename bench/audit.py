"""Benchmark: what does a blind audit of 150 items say about 192k labels nobody reviewed?

Simulated with reference labels (tests/data/drugbank_full_reference_patterns.csv, 86 patterns)
on the FULL DrugBank set (192,284 rows), in two states:

1. seeds only: the default TrainConfig on the 192 seed labels;
2. seeds + 40 queue reviews: the 40 rows the review queue hands out first (most uncertain first,
   at most 2 rows per pattern) answered with the reference, then a retrain on the 232 labels.

and a stress state (``--flip 0.02``): seeds only, with 2 % of each pattern's rows given the other
right class at random, which breaks the assumption that rows with the same blinded sentence share
the right class (the certainty clusters rest on it; the ablation without them does not).

The unreviewed population is every row except the labelled ones. Per state, one run prints:

- the true accuracy of the unreviewed model labels;
- ours: 200 simulated audits of 150 items (annotations.audit_stats: strata = predicted class x
  confidence band, sentence patterns at least one sampling step large taken with certainty,
  allocation for the smallest expected interval, systematic draw in pattern order for the
  rest, Jeffreys Monte Carlo interval with the boundary modification): coverage of the 95 %
  interval, mean half-width;
- ablations: the same without certainty clusters (every item one row of a stratum, the design
  of the first version), and that with plain Neyman allocation (n_h ~ N_h x SD, SD floored);
- baseline: a simple random sample of 150 with a Jeffreys interval (no stratification);
- the naive estimate: agreement with the model on the review queue (state 2) or the
  out-of-fold accuracy on the labels (state 1): its error beside ours;
- auto-accept at alpha = 1 % (MAPIE Learn-then-Test per band), over 200 calibration draws of 150
  and of 1,000 audited items: share of draws whose realised error among accepted rows exceeds
  alpha (target <= 5 %), and share of rows accepted.

    .venv/bin/python bench/audit.py [--retrain] [--draws 200]

Trained models are cached under bench/out/audit-*; --retrain trains them again. The last line,
for scripts: ``coverage C half-width H exceed E`` (state 2, ours; C and E fractions, H points).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from annotations import audit_stats as stats
from bench._measure import DATA, OUT, REPO, SEED_CSV, print_table
from modeling.blinding import blind
from modeling.config import TrainConfig
from modeling.inference import Predictor
from modeling.tables import read_labelled
from modeling.training import TrainExample, train

FULL_REFERENCE = REPO / "tests" / "data" / "drugbank_full_reference_patterns.csv"
QUEUE_REVIEWS, PER_PATTERN = 40, 2
AUDIT_SIZE, ALPHA = stats.DEFAULT_AUDIT_SIZE, 0.01


def load_population() -> tuple[list[str], Counter]:
    """Blinded text per row of the full set, and the seed rows' (text -> count) to leave out."""
    texts = []
    with (DATA / "drugbank_ddi_full.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            a = row["Drug 1"] or row.get("drug1_id", "")
            b = row["Drug 2"] or row.get("drug2_id", "")
            texts.append(blind(row["Interaction Description"], a, b))
    return texts, Counter(r.text for r in read_labelled(SEED_CSV))


def trained(name: str, examples: list[TrainExample], retrain: bool) -> Path:
    folder = OUT / f"audit-{name}"
    if retrain or not (folder / "model.json").exists():
        started, cpu = time.perf_counter(), time.process_time()
        classes = sorted({e.label for e in examples})
        train(examples, classes=classes, config=TrainConfig(), out_dir=folder)
        print(
            f"  trained {name} on {len(examples)} labels: wall "
            f"{time.perf_counter() - started:.0f} s, CPU {time.process_time() - cpu:.0f} s"
        )
    return folder


class State:
    """Per-pattern prediction and confidence, and per-pattern counts of unreviewed rows."""

    def __init__(self, folder: Path, patterns: list[str], truth: dict[str, str]):
        predictor = Predictor.load(folder)
        scores = predictor.score(patterns)
        self.patterns = patterns
        self.predicted = np.asarray(
            [predictor.classes[i] for i in scores.probabilities.argmax(axis=1)]
        )
        self.confidence = np.asarray(scores.confidence)
        self.correct = self.predicted == np.asarray([truth[p] for p in patterns])
        metrics = json.loads((folder / "model.json").read_text())["metrics"]
        self.oof_accuracy = float(metrics.get("accuracy", float("nan")))

    def strata(self, counts: np.ndarray) -> dict[str, list[int]]:
        """stratum key -> pattern indices, each repeated by its unreviewed row count, in order."""
        out: dict[str, list[int]] = defaultdict(list)
        for i in np.argsort(self.patterns, kind="stable"):  # pattern order: implicit strata
            key = stats.stratum_key(self.predicted[i], stats.band_of(self.confidence[i]))
            out[key].extend([int(i)] * int(counts[i]))
        return {k: np.asarray(v) for k, v in out.items() if v}


def audit_draw(
    state: State,
    strata: dict,
    truth: dict,
    size: int,
    rng,
    method: str = "width",
    clustered: bool = True,
) -> dict:
    """stratum -> (rows drawn at random, their answers, certainty clusters as (rows, answers)).

    `truth[key]` is each row's correctness, aligned with `strata[key]` (pattern per row)."""
    keys = sorted(strata)
    sizes = [len(strata[k]) for k in keys]
    expected = [state.expected_error[k] for k in keys]
    groups = {k: Counter(strata[k].tolist()) for k in keys}  # pattern -> rows in the stratum
    clusters = [list(groups[k].values()) for k in keys] if clustered else None
    answers = {}
    allocation = stats.allocate(sizes, expected, size, method, clusters)
    for key, take in zip(keys, allocation, strict=True):
        patterns = list(groups[key])
        plan = stats.plan_stratum(list(groups[key].values()), take) if clustered else {}
        certain = {patterns[i]: n for i, n in plan.items()}
        got = []
        for pattern, n in sorted(certain.items()):
            where = np.flatnonzero(strata[key] == pattern)
            got.append((len(where), truth[key][rng.choice(where, size=n, replace=False)].tolist()))
        rest = np.flatnonzero(~np.isin(strata[key], list(certain)))
        picked = stats.systematic_sample(len(rest), take - sum(plan.values()), rng)
        answers[key] = (len(rest), truth[key][rest[picked]].tolist(), got)
    return answers


def estimate(strata_answers: dict, seed: int) -> stats.Estimate:
    results = [
        r for key, parts in strata_answers.items() for r in stats.stratum_results(key, *parts)
    ]
    return stats.estimate_accuracy(results, seed=seed, draws=4000)


def evaluate(
    state: State, counts: np.ndarray, naive: float, draws: int, seed: int, flip: float = 0.0
) -> dict:
    """`flip`: share of each pattern's rows whose right class is the other one (a stress test
    of the same-sentence assumption; 0 = the reference as it is)."""
    rng = np.random.default_rng(seed)
    strata = state.strata(counts)
    truth_rows = {
        k: state.correct[v] ^ (rng.random(len(v)) < flip) for k, v in sorted(strata.items())
    }
    everything = np.concatenate([truth_rows[k] for k in sorted(strata)])
    truth = float(everything.mean())
    state.expected_error = {k: float(np.mean(1.0 - state.confidence[v])) for k, v in strata.items()}
    ours, plain, neyman, srs, exceed = [], [], [], [], {150: [], 1000: []}
    accepted_share = {150: [], 1000: []}
    classes = sorted(set(state.predicted.tolist()))
    for d in range(draws):
        answers = audit_draw(state, strata, truth_rows, AUDIT_SIZE, rng)
        ours.append(estimate(answers, d))
        other = audit_draw(state, strata, truth_rows, AUDIT_SIZE, rng, clustered=False)
        plain.append(estimate(other, d))
        other = audit_draw(state, strata, truth_rows, AUDIT_SIZE, rng, "neyman", False)
        neyman.append(estimate(other, d))
        right = int(everything[rng.choice(len(everything), size=AUDIT_SIZE, replace=False)].sum())
        srs.append(
            stats.estimate_accuracy(
                [stats.StratumResult("all", len(everything), AUDIT_SIZE, right)]
            )
        )
        for size in exceed:
            calib = (
                answers if size == AUDIT_SIZE else audit_draw(state, strata, truth_rows, size, rng)
            )
            thresholds = stats.auto_accept_thresholds(calib, classes, ALPHA)
            accepted_rows = wrong_rows = 0
            for t in thresholds:
                for band in t.bands_accepted:
                    members = truth_rows[stats.stratum_key(t.predicted_class, band)]
                    accepted_rows += len(members)
                    wrong_rows += int((~members).sum())
            exceed[size].append(accepted_rows > 0 and wrong_rows / accepted_rows > ALPHA)
            accepted_share[size].append(accepted_rows / len(everything))

    def summary(estimates):
        covered = np.mean([e.low <= truth <= e.high for e in estimates])
        half = np.mean([(e.high - e.low) / 2 for e in estimates]) * 100
        bias = np.mean([abs(e.value - truth) for e in estimates]) * 100
        return covered, half, bias

    return {
        "truth": truth,
        "rows": int(counts.sum()),
        "ours": summary(ours),
        "srs": summary(srs),
        "neyman": summary(neyman),
        "plain": summary(plain),
        "naive": naive,
        "exceed": {k: float(np.mean(v)) for k, v in exceed.items()},
        "accepted": {k: float(np.mean(v)) for k, v in accepted_share.items()},
    }


def queue_first(state: State, counts: np.ndarray, n: int) -> list[tuple[int, int]]:
    """(pattern, rows) the queue hands out first: most uncertain first, PER_PATTERN each."""
    picked, total = [], 0
    for i in np.argsort(state.confidence, kind="stable"):
        if total >= n or counts[i] == 0:
            continue
        take = int(min(PER_PATTERN, counts[i], n - total))
        picked.append((int(i), take))
        total += take
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument(
        "--flip",
        type=float,
        default=0.02,
        help="stress state: share of each pattern's rows given the other right class (0: off)",
    )
    args = parser.parse_args()
    with FULL_REFERENCE.open(newline="", encoding="utf-8") as handle:
        truth = {r["pattern"]: r["label"] for r in csv.DictReader(handle)}
    texts, seeds = load_population()
    by_pattern = Counter(texts)
    patterns = sorted(by_pattern)
    counts = np.asarray([by_pattern[p] - seeds.get(p, 0) for p in patterns])
    print(f"full set: {len(texts):,} rows, {len(patterns)} patterns; {sum(seeds.values())} seeds")
    seed_rows = read_labelled(SEED_CSV)
    examples = [TrainExample(r.text, r.label) for r in seed_rows]
    first = State(trained("seeds", examples, args.retrain), patterns, truth)
    results = {"seeds only": evaluate(first, counts, first.oof_accuracy, args.draws, 1)}
    if args.flip:
        results[f"seeds only, {args.flip:.0%} of each pattern's rows flipped"] = evaluate(
            first, counts, first.oof_accuracy, args.draws, 3, flip=args.flip
        )

    reviewed = queue_first(first, counts, QUEUE_REVIEWS)
    agreement = sum(take * int(first.correct[i]) for i, take in reviewed) / QUEUE_REVIEWS
    more = [
        TrainExample(patterns[i], truth[patterns[i]]) for i, take in reviewed for _ in range(take)
    ]
    second = State(trained("seeds-40", examples + more, args.retrain), patterns, truth)
    left = counts.copy()
    for i, take in reviewed:
        left[i] -= take
    results[f"seeds + {QUEUE_REVIEWS} queue reviews"] = evaluate(
        second, left, agreement, args.draws, 2
    )

    table = []
    for name, r in results.items():
        c, h, b = r["ours"]
        sc, sh, sb = r["srs"]
        nc, nh, nb = r["neyman"]
        pc, ph, pb = r["plain"]
        table.append(
            [
                name,
                f"{r['rows']:,}",
                f"{r['truth']:.4f}",
                f"{c:.1%} / {h:.2f} pt / {b:.2f} pt",
                f"{pc:.1%} / {ph:.2f} pt / {pb:.2f} pt",
                f"{nc:.1%} / {nh:.2f} pt / {nb:.2f} pt",
                f"{sc:.1%} / {sh:.2f} pt / {sb:.2f} pt",
                f"{r['naive']:.3f} (off by {abs(r['naive'] - r['truth']) * 100:.1f} pt)",
                f"{r['exceed'][150]:.1%} / {r['accepted'][150]:.1%}",
                f"{r['exceed'][1000]:.1%} / {r['accepted'][1000]:.1%}",
            ]
        )
    print(f"{args.draws} simulated audits of {AUDIT_SIZE} items per state; alpha = {ALPHA:.0%}")
    print_table(
        [
            "state",
            "unreviewed rows",
            "true accuracy",
            "ours: coverage / half-width / mean error",
            "ablation: no certainty clusters",
            "ablation: and Neyman allocation",
            "baseline SRS: coverage / half-width / mean error",
            "naive estimate",
            "auto-accept 150: exceed / accepted",
            "auto-accept 1,000: exceed / accepted",
        ],
        table,
    )
    print("targets: coverage >= 95 %, half-width <= 2 pt, exceed <= 5 %")
    c, h, _ = results[f"seeds + {QUEUE_REVIEWS} queue reviews"]["ours"]
    e = results[f"seeds + {QUEUE_REVIEWS} queue reviews"]["exceed"][150]
    print(f"coverage {c:.3f} half-width {h:.2f} exceed {e:.3f}")


if __name__ == "__main__":
    main()
