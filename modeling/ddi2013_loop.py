"""The review loop on DDI-2013 free text, simulated: does the order of the review queue matter?

Start from ``start`` labelled train pairs (a seeded random sample of the pool, the same for every
strategy), then ``rounds`` rounds: train, score the test split, let the strategy pick
``per_round`` unlabelled pool pairs to review, answer those reviews from the corpus labels, add
them. Strategies:

- ``app``: the app's queue order, lowest calibrated confidence first. The confidence is the app's
  confidence model (modeling.uncertainty: logistic regression of correctness on the
  temperature-scaled top probability and the text's novelty against the labelled texts), fitted
  each round on the dev split's predictions (modeling.ddi2013_calibration);
- ``lowest-softmax``: lowest raw softmax top probability first (uncertainty sampling);
- ``random``: a seeded random sample of the unlabelled pool.

Label accounting is structural: the strategies see the pool's texts and the model's outputs,
never a label; a review reads one pool pair's label through :class:`Oracle`, which holds only
the pool and refuses a pair twice; the test split is only scored. The dev split (whole train
documents, disjoint from the pool) picks each training's epoch and fits the confidence for every
strategy alike; its labels are not counted in the labelled budget.

The frozen lower layers are the pretrained backbone's, so they run once over pool, dev and test
(modeling.ddi2013_model.cache_bottom); each round trains a fresh top (fit_cached).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from modeling.calibration import fit_temperature, softmax_with_temperature
from modeling.ddi2013 import CLASSES, DdiPair, render
from modeling.ddi2013_model import (
    RecipeConfig,
    cache_bottom,
    encode_pairs,
    predict,
    resolve_precision,
)
from modeling.ddi2013_training import build, fit_cached, score_probs, subset
from modeling.uncertainty import feature_matrix, fit_confidence_model, grams, novelty

STRATEGIES = ("app", "lowest-softmax", "random")


class Oracle:
    """The reviewer: answers a pool pair's label from the corpus, once per pair."""

    def __init__(self, pool: Sequence[DdiPair]):
        self._labels = [p.label for p in pool]
        self.asked: list[int] = []
        self._seen: set[int] = set()

    def answer(self, rows: Sequence[int]) -> list[str]:
        repeated = self._seen.intersection(rows)
        if repeated or len(set(rows)) != len(rows):
            raise ValueError(f"pool rows reviewed twice: {sorted(repeated)[:5]}")
        self._seen.update(rows)
        self.asked.extend(rows)
        return [self._labels[i] for i in rows]


def pick(
    strategy: str,
    candidates: Sequence[int],
    count: int,
    *,
    logits: np.ndarray,
    confidence: np.ndarray | None,
    rng: random.Random,
) -> list[int]:
    """`count` of the candidate pool rows, by `strategy` (see the module docstring).

    `logits` and `confidence` are indexed like `candidates`; ties keep candidate order."""
    count = min(count, len(candidates))
    if strategy == "random":
        return rng.sample(list(candidates), count)
    if strategy == "lowest-softmax":
        score = softmax_with_temperature(logits, 1.0).max(axis=1)
    elif strategy == "app":
        if confidence is None:
            raise ValueError("the app strategy needs the calibrated confidence")
        score = confidence
    else:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    order = np.argsort(np.asarray(score, dtype=np.float64), kind="stable")[:count]
    return [candidates[i] for i in order]


def app_confidence(
    dev_logits: np.ndarray,
    dev_labels: np.ndarray,
    dev_texts: Sequence[str],
    logits: np.ndarray,
    texts: Sequence[str],
    vocab: set[str],
) -> np.ndarray:
    """The app's calibrated confidence of `logits`: T and the confidence model fitted on dev."""
    temperature = fit_temperature(dev_logits, dev_labels)
    dev_scaled = softmax_with_temperature(dev_logits, temperature)
    dev_features = feature_matrix(
        dev_scaled, [novelty(t, vocab) for t in dev_texts], np.zeros(len(dev_texts))
    )
    model = fit_confidence_model(dev_features, dev_scaled.argmax(axis=1) == dev_labels)
    scaled = softmax_with_temperature(logits, temperature)
    features = feature_matrix(scaled, [novelty(t, vocab) for t in texts], np.zeros(len(texts)))
    return model.predict(features)


def run_loop(
    pool: Sequence[DdiPair],
    dev: Sequence[DdiPair],
    test: Sequence[DdiPair],
    config: RecipeConfig,
    *,
    test_removed: Sequence[DdiPair] = (),
    dev_removed: Sequence[DdiPair] = (),
    start: int = 500,
    per_round: int = 100,
    rounds: int = 8,
    strategies: Sequence[str] = STRATEGIES,
    log: Callable[[str], None] = print,
) -> dict:
    """Every strategy's curve: test micro-F1 after each round, and the label accounting.

    Round 0 trains on the `start` labels; round r on start + r * per_round. `pool` are train
    pairs (filtered already); `test` the kept test pairs, `test_removed` the filtered ones
    (scored as negative)."""
    import torch

    config = resolve_precision(config, "cpu")
    torch.set_num_threads(config.threads)
    unknown = sorted({s for s in strategies} - set(STRATEGIES))
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; expected some of {STRATEGIES}")
    if start + rounds * per_round > len(pool):
        raise ValueError(f"the pool has {len(pool)} pairs, the loop needs up to "
                         f"{start + rounds * per_round}")  # fmt: skip
    mark = time.perf_counter(), time.process_time()
    tokenizer, model = build(config)
    pad_id = tokenizer.pad_token_id or 0
    caches = {
        name: cache_bottom(
            model, encode_pairs(tokenizer, pairs, config.style, config.max_length), pad_id,
            config.bf16,
        )
        for name, pairs in (("pool", pool), ("dev", dev), ("test", test))
    }  # fmt: skip
    frozen = {"wall_s": time.perf_counter() - mark[0], "cpu_s": time.process_time() - mark[1]}
    log(f"loop: frozen layers over {len(pool)} pool / {len(dev)} dev / {len(test)} test pairs "
        f"in {frozen['wall_s']:.0f} s")  # fmt: skip
    texts = [render(p, config.style).text for p in pool]
    dev_texts = [render(p, config.style).text for p in dev]
    index = {c: i for i, c in enumerate(CLASSES)}
    dev_labels = np.asarray([index[p.label] for p in dev])
    initial = random.Random(config.seed).sample(range(len(pool)), start)
    curves: dict = {}
    for strategy in strategies:
        oracle = Oracle(pool)
        rng = random.Random(config.seed + 1)
        labelled: dict[int, str] = dict(zip(initial, oracle.answer(initial), strict=True))
        vocab: set[str] = set()
        for i in initial:
            vocab |= grams(texts[i])
        curve = []
        for round_ in range(rounds + 1):
            began = time.perf_counter(), time.process_time()
            rows = list(labelled)
            train = [replace(pool[i], label=labelled[i]) for i in rows]
            _, fresh = build(config)
            result = fit_cached(
                fresh, tokenizer, subset(caches["pool"], rows), train, caches["dev"], dev,
                config, dev_removed=dev_removed, log=lambda _: None,
            )  # fmt: skip
            probs = predict(result.model, caches["test"], config.bf16)
            scores = score_probs(test, probs, test_removed)
            entry = {
                "round": round_,
                "labels": len(labelled),
                "test_micro_f1": scores["micro"]["f1"],
                "test_micro": scores["micro"],
                "best_epoch": result.best_epoch,
                "added": [],
            }
            if round_ < rounds:
                candidates = [i for i in range(len(pool)) if i not in labelled]
                logits = predict(result.model, subset(caches["pool"], candidates), config.bf16,
                                 logits=True)  # fmt: skip
                confidence = None
                if strategy == "app":
                    confidence = app_confidence(
                        result.dev_logits, dev_labels, dev_texts, logits,
                        [texts[i] for i in candidates], vocab,
                    )  # fmt: skip
                chosen = pick(strategy, candidates, per_round, logits=logits,
                              confidence=confidence, rng=rng)  # fmt: skip
                labelled.update(zip(chosen, oracle.answer(chosen), strict=True))
                for i in chosen:
                    vocab |= grams(texts[i])
                entry["added"] = chosen
                entry["added_positive"] = sum(labelled[i] != "negative" for i in chosen)
            entry["wall_s"] = time.perf_counter() - began[0]
            entry["cpu_s"] = time.process_time() - began[1]
            curve.append(entry)
            log(f"loop {strategy} round {round_}: {entry['labels']} labels, test micro-F1 "
                f"{entry['test_micro_f1']:.3f} ({entry['wall_s']:.0f} s)")  # fmt: skip
        curves[strategy] = {"rounds": curve, "reviewed": list(oracle.asked)}
    return {
        "pool_pairs": len(pool),
        "dev_pairs": len(dev),
        "test_pairs": len(test) + len(test_removed),
        "start": start,
        "per_round": per_round,
        "rounds": rounds,
        "initial": initial,
        "frozen_layers_once": frozen,
        "curves": curves,
    }
