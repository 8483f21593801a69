"""DDI-2013 scoring: micro P/R/F1 over the positive classes, checked on hand-computed examples."""

from __future__ import annotations

import pytest

from modeling.ddi2013_scoring import micro_prf

POSITIVE = ["mechanism", "effect", "advise", "int"]


def test_micro_and_per_class_scores_match_a_hand_computed_example():
    y_true = [
        "mechanism",
        "mechanism",
        "effect",
        "advise",
        "negative",
        "negative",
        "int",
        "negative",
    ]
    y_pred = [
        "mechanism",
        "effect",
        "effect",
        "negative",
        "advise",
        "negative",
        "negative",
        "negative",
    ]

    scores = micro_prf(y_true, y_pred, positive_classes=POSITIVE)

    # TP: 0 (mechanism), 2 (effect). FP: 1 (effect for mechanism), 4 (advise for negative).
    # FN: 1 (mechanism), 3 (advise predicted negative), 6 (int predicted negative).
    assert scores["micro"] == {
        "precision": 0.5,
        "recall": 0.4,
        "f1": pytest.approx(4 / 9),
        "tp": 2,
        "fp": 2,
        "fn": 3,
    }
    assert scores["per_class"]["mechanism"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "tp": 1,
        "fp": 0,
        "fn": 1,
        "support": 2,
    }
    assert scores["per_class"]["effect"] == {
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
        "tp": 1,
        "fp": 1,
        "fn": 0,
        "support": 1,
    }
    assert scores["per_class"]["advise"]["f1"] == 0.0
    assert (scores["per_class"]["advise"]["fp"], scores["per_class"]["advise"]["fn"]) == (1, 1)
    assert scores["per_class"]["int"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "tp": 0,
        "fp": 0,
        "fn": 1,
        "support": 1,
    }
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 4)
    assert scores["n"] == 8
    assert "negative" not in scores["per_class"]


def test_correct_negatives_do_not_count_anywhere():
    with_negatives = micro_prf(
        ["effect", "negative", "negative"],
        ["effect", "negative", "negative"],
        positive_classes=POSITIVE,
    )
    without = micro_prf(["effect"], ["effect"], positive_classes=POSITIVE)

    assert with_negatives["micro"] == without["micro"]
    assert with_negatives["micro"]["f1"] == 1.0


def test_predicting_only_negative_scores_zero_not_an_error():
    scores = micro_prf(["effect", "int", "negative"], ["negative"] * 3, positive_classes=POSITIVE)

    assert scores["micro"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "tp": 0,
        "fp": 0,
        "fn": 2,
    }


def test_a_wrong_positive_class_is_both_a_false_positive_and_a_false_negative():
    scores = micro_prf(["mechanism"], ["int"], positive_classes=POSITIVE)

    assert scores["per_class"]["int"]["fp"] == 1
    assert scores["per_class"]["mechanism"]["fn"] == 1
    assert (scores["micro"]["fp"], scores["micro"]["fn"]) == (1, 1)


def test_any_class_set_works():
    scores = micro_prf(["a", "b", "c"], ["a", "c", "c"], positive_classes=["a", "b"])

    assert scores["micro"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "tp": 1,
        "fp": 0,
        "fn": 1,
    }


def test_mismatched_lengths_and_empty_positive_classes_are_rejected():
    with pytest.raises(ValueError, match="2 true labels but 1 predictions"):
        micro_prf(["a", "b"], ["a"], positive_classes=["a"])
    with pytest.raises(ValueError, match="positive_classes is empty"):
        micro_prf(["a"], ["a"], positive_classes=[])
