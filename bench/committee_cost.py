"""Benchmark: what the committee costs per row on free text (every row its own text).

One model version (bench/out/seed-model: the default TrainConfig on the 192 seeds, i.e. a
5-member cross-fitted committee with the direction probe; trained by bench/train.py or copied
from bench/out/audit-seeds). Scores the first --rows raw, un-blinded sample descriptions
(drug names make every text distinct, so de-duplication cannot help) with:

- baseline: one member alone (``Predictor.predict_batch``: one forward pass per row), what a
  single-model version costs;
- ours: the committee's ``score`` (5 members, plus the direction twin where the sentence has an
  increase/decrease word, plus novelty and the confidence model).

Prints rows/s by wall time and by process CPU time for each, and the ratio. Same process, warm
(one untimed warm-up), interleaved --repeats rounds, best round each.

    .venv/bin/python bench/committee_cost.py [--rows 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._measure import OUT, print_table
from bench.inference import load_texts
from modeling.inference import Predictor


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    committee = Predictor.load(OUT / "seed-model", backend="torch")
    single = committee.members[0]
    texts = load_texts("distinct")[: args.rows]
    single.predict_batch(texts[:32])
    committee.score(texts[:32])
    best = {"single": (1e9, 1e9), "committee": (1e9, 1e9)}
    for _ in range(args.repeats):
        for name, fn in (
            ("single", lambda: single.predict_batch(texts)),
            ("committee", lambda: committee.score(texts)),
        ):
            wall, cpu = timed(fn)
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    rows = []
    for name, label in (("single", "baseline: one member"), ("committee", "ours: committee score")):
        wall, cpu = best[name]
        rows.append([label, f"{len(texts) / wall:,.0f}", f"{len(texts) / cpu:,.0f}"])
    ratio = best["committee"][1] / best["single"][1]
    print(f"{len(texts)} distinct free-text rows, {len(committee.members)} members")
    print_table(["engine", "rows/s (wall)", "rows per CPU-s"], rows)
    print(f"committee cost per row: {ratio:.1f}x one model (CPU time)")


if __name__ == "__main__":
    main()
