"""The DDI-2013 review loop (modeling.ddi2013_loop): label accounting and queue orders."""

from __future__ import annotations

import random

import numpy as np
import pytest

from modeling.ddi2013 import DdiPair, Entity
from modeling.ddi2013_loop import Oracle, pick, run_loop
from modeling.ddi2013_model import RecipeConfig

VERBS = ["increases", "decreases", "should not be taken with", "is unrelated to", "and"]
LABELS = ["mechanism", "effect", "advise", "int", "negative"]


def _pairs(n: int, split: str, offset: int = 0) -> list[DdiPair]:
    out = []
    for i in range(offset, offset + n):
        sentence = f"Aspirin {VERBS[i % 5]} warfarin in patient {i}."
        b = sentence.index("warfarin")
        out.append(
            DdiPair(
                split=split,
                pair_id=f"{split}.{i}",
                sentence_id=f"{split}-doc{i // 3}.s{i}",
                sentence=sentence,
                e1=Entity("Aspirin", "drug", ((0, 7),)),
                e2=Entity("warfarin", "drug", ((b, b + 8),)),
                label=LABELS[i % 5],
            )
        )
    return out


def test_the_oracle_answers_pool_labels_once_per_pair():
    pool = _pairs(6, "train")
    oracle = Oracle(pool)
    assert oracle.answer([0, 3]) == [pool[0].label, pool[3].label]
    with pytest.raises(ValueError, match="reviewed twice"):
        oracle.answer([3, 4])
    with pytest.raises(ValueError, match="reviewed twice"):
        oracle.answer([5, 5])
    assert oracle.asked == [0, 3]


def test_strategies_order_the_queue_lowest_confidence_first():
    logits = np.log(np.asarray([[0.9, 0.1], [0.5, 0.5], [0.7, 0.3], [0.6, 0.4]]))
    candidates = [10, 11, 12, 13]
    rng = random.Random(0)
    assert pick("lowest-softmax", candidates, 2, logits=logits, confidence=None, rng=rng) == [
        11,
        13,
    ]
    confidence = np.asarray([0.2, 0.9, 0.1, 0.5])
    assert pick("app", candidates, 2, logits=logits, confidence=confidence, rng=rng) == [12, 10]
    drawn = pick("random", candidates, 3, logits=logits, confidence=None, rng=rng)
    assert len(set(drawn)) == 3 and set(drawn) <= set(candidates)
    with pytest.raises(ValueError, match="needs the calibrated confidence"):
        pick("app", candidates, 2, logits=logits, confidence=None, rng=rng)


def test_each_round_adds_exactly_the_reviewed_pool_labels_and_never_a_test_label():
    pool, dev, test = _pairs(60, "train"), _pairs(15, "train", 100), _pairs(20, "test", 200)
    config = RecipeConfig(backbone="tiny-random-bert", train_layers=1, epochs=1, bf16=False)
    result = run_loop(pool, dev, test, config, start=20, per_round=10, rounds=2, log=lambda _: None)
    assert result["initial"] == result["initial"][:20] and len(set(result["initial"])) == 20
    for strategy, curve in result["curves"].items():
        rounds = curve["rounds"]
        assert [r["labels"] for r in rounds] == [20, 30, 40], strategy
        assert [len(r["added"]) for r in rounds] == [10, 10, 0]
        # Every review is a pool row (the oracle holds only the pool), asked once, never one
        # labelled already; the reviews are the initial sample, then each round's picks.
        reviewed = curve["reviewed"]
        assert len(reviewed) == len(set(reviewed)) == 40
        assert all(0 <= i < len(pool) for i in reviewed)
        assert reviewed == result["initial"] + rounds[0]["added"] + rounds[1]["added"]
        assert {pool[i].pair_id for i in reviewed}.isdisjoint(p.pair_id for p in test)
        assert all(0.0 <= r["test_micro_f1"] <= 1.0 for r in rounds)
    # The same round-0 labels for every strategy: the curves start from one point.
    assert len({c["rounds"][0]["test_micro_f1"] for c in result["curves"].values()}) == 1
    with pytest.raises(ValueError, match="the pool has 60 pairs"):
        run_loop(pool, dev, test, config, start=50, per_round=10, rounds=2, log=lambda _: None)
