"""Benchmark: train with the default TrainConfig on the 192 seed labels, then check quality.

Prints the training time and validation metrics, then the agreement of the trained model with
the labeling guideline on the whole 7,073-row sample (reference: one judged label per blinded
sentence pattern, tests/data/drugbank_reference_patterns.csv), overall and per pattern.

Run: ``.venv/bin/python bench/train.py [--epochs N ...]`` (about 1-3 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import OUT, REFERENCE_CSV, SAMPLE_CSV, SEED_CSV, peak_rss_mib, print_table, timed

from modeling.config import TrainConfig
from modeling.inference import Predictor
from modeling.tables import blinded_text, iter_rows, read_labelled
from modeling.training import TrainExample, train


def read_reference() -> dict[str, tuple[str, str]]:
    """pattern -> (label, seed coverage) from the hand-made reference file."""
    with REFERENCE_CSV.open(newline="", encoding="utf-8") as handle:
        return {row["pattern"]: (row["label"], row["seed"]) for row in csv.DictReader(handle)}


def main() -> None:
    """Train, time, evaluate against the reference; print tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("epochs", "lora_r", "batch_size", "seed"):
        parser.add_argument("--" + name.replace("_", "-"), type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--target-modules")
    args = parser.parse_args()
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    if "target_modules" in overrides:
        overrides["target_modules"] = tuple(overrides["target_modules"].split(","))
    config = TrainConfig(**overrides)

    seed_rows = read_labelled(SEED_CSV)
    examples = [TrainExample(row.text, row.label) for row in seed_rows]
    classes = sorted({row.label for row in seed_rows})
    out_dir = OUT / "seed-model"
    cpu_started = time.process_time()
    result, seconds = timed(
        lambda: train(examples, classes=classes, config=config, out_dir=out_dir)
    )
    cpu_seconds = time.process_time() - cpu_started
    print(f"config: {json.dumps(config.to_dict())}")
    # CPU time as well: on a shared machine the wall time mostly measures the neighbours.
    print(
        f"train time (train() call): wall {seconds:.1f} s, process CPU {cpu_seconds:.1f} s, "
        f"load average {os.getloadavg()[0]:.1f}   target <= 180 s"
    )
    m = result.metrics
    print(
        f"out of fold ({m['folds']} members): accuracy {m['accuracy']:.3f}  "
        f"macro-F1 {m['macro_f1']:.3f}  ECE {m['ece']:.4f} (softmax {m['ece_softmax']:.4f})  "
        f"in-sample accuracy {m['in_sample']['accuracy']:.3f}  n_train {m['n_train']}"
    )

    reference = read_reference()
    predictor = Predictor.load(out_dir)
    texts = [blinded_text(row) for row in iter_rows(SAMPLE_CSV)]
    probs, predict_seconds = timed(lambda: predictor.predict_batch(texts))
    predicted = [predictor.classes[i] for i in probs.argmax(axis=1)]
    confidence = probs.max(axis=1)
    missing = sorted(set(texts) - set(reference))
    if missing:
        raise SystemExit(
            f"{len(missing)} sample patterns are not in {REFERENCE_CSV}: {missing[:2]}"
        )
    rows_total, rows_right = Counter(), Counter()
    conf_sum = Counter()
    for text, label, conf in zip(texts, predicted, confidence, strict=True):
        rows_total[text] += 1
        rows_right[text] += label == reference[text][0]
        conf_sum[text] += float(conf)
    right = sum(rows_right.values())
    print(
        f"sample agreement with the guideline: {right}/{len(texts)} rows = "
        f"{right / len(texts):.4f}   target >= 0.97   (predict {predict_seconds:.2f} s)"
    )
    for coverage in ("yes", "no"):
        subset = [t for t in rows_total if reference[t][1] == coverage]
        n = sum(rows_total[t] for t in subset)
        ok = sum(rows_right[t] for t in subset)
        print(
            f"  patterns {'in' if coverage == 'yes' else 'NOT in'} the seed set: "
            f"{len(subset)} patterns, {ok}/{n} rows = {ok / max(n, 1):.4f}"
        )
    table = []
    for text in sorted(rows_total, key=lambda t: (rows_right[t] / rows_total[t], -rows_total[t])):
        table.append(
            [
                f"{rows_right[text] / rows_total[text]:.2f}",
                rows_total[text],
                reference[text][0][:5],
                reference[text][1],
                f"{conf_sum[text] / rows_total[text]:.3f}",
                text[:95],
            ]
        )
    print("\nper-pattern accuracy (worst first):")
    print_table(["acc", "rows", "ref", "seed", "conf", "pattern"], table)
    hard = [row for row in table if float(row[0]) < 1.0]
    print(f"\nhard patterns (any row wrong): {len(hard)}")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
