"""Metrics on hand-computed examples; temperature scaling on a miscalibrated toy."""

from __future__ import annotations

import numpy as np
import pytest

from modeling.calibration import fit_temperature, softmax_with_temperature
from modeling.metrics import classification_metrics, expected_calibration_error


def test_classification_metrics_match_hand_computation():
    # true:  a a b b c ; pred: a b b b a
    metrics = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    a, b, c = (metrics["per_class"][k] for k in "abc")
    assert (a["precision"], a["recall"], a["support"]) == (0.5, 0.5, 2)
    assert a["f1"] == pytest.approx(0.5)
    assert b["precision"] == pytest.approx(2 / 3) and b["recall"] == 1.0
    assert b["f1"] == pytest.approx(0.8)
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == (0.0, 0.0, 0.0, 1)
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_macro_f1_ignores_classes_absent_from_truth_and_prediction():
    metrics = classification_metrics([0, 1], [0, 1], ["a", "b", "c", "d", "e"])
    assert metrics["macro_f1"] == 1.0
    assert len(metrics["confusion_matrix"]) == 5


def test_ece_hand_computed():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])
    # bins: 0.9 (2 items, accuracy 0.5, gap 0.4), 0.6 (2 items, accuracy 1.0, gap 0.4)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)
    assert expected_calibration_error(np.zeros((0, 2)), np.zeros(0)) == 0.0


def test_temperature_scaling_lowers_ece_of_an_overconfident_model():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=2000)
    signal = np.eye(3)[labels] * 1.5 + rng.normal(0, 1.0, size=(2000, 3))
    overconfident = signal * 6.0
    temperature = fit_temperature(overconfident, labels)
    before = expected_calibration_error(softmax_with_temperature(overconfident, 1.0), labels)
    after = expected_calibration_error(softmax_with_temperature(overconfident, temperature), labels)
    assert temperature > 2.0
    assert after < before / 2


def test_temperature_without_data_is_one():
    assert fit_temperature(np.zeros((0, 2)), np.zeros(0, dtype=int)) == 1.0
