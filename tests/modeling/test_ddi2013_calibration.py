"""DDI-2013 confidence (modeling.ddi2013_calibration): fitted on dev only, scored on test."""

from __future__ import annotations

import numpy as np

from modeling.ddi2013_calibration import confidence_report, error_auroc


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Logits 4x too sharp for labels drawn from softmax(logits / 4): T should come out ~4."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(size=(n, 5)) * 1.5
    probs = np.exp(true_logits) / np.exp(true_logits).sum(axis=1, keepdims=True)
    labels = np.asarray([rng.choice(5, p=p) for p in probs])
    texts = [f"drug a with drug b case {i % 7}" for i in range(n)]
    return true_logits * 4.0, labels, texts


def test_the_temperature_is_fitted_on_dev_and_lowers_the_test_ece():
    dev_logits, dev_labels, dev_texts = _overconfident(1500, 0)
    test_logits, test_labels, test_texts = _overconfident(1500, 1)
    report = confidence_report(
        dev_logits, dev_labels, test_logits, test_labels,
        dev_texts=dev_texts, test_texts=test_texts, train_texts=dev_texts[:50],
    )  # fmt: skip
    assert 3.0 < report["temperature"] < 5.0
    test = report["test"]
    assert test["pairs"] == 1500
    assert test["temperature"]["ece"] < 0.05 < test["raw"]["ece"]
    assert test["app"]["ece"] < test["raw"]["ece"]
    # Temperature scaling keeps the order of the top probability nearly (not exactly: rows
    # differ in their gaps), and a useful confidence ranks errors above chance.
    for method in ("raw", "temperature", "app"):
        assert 0.6 < test[method]["error_auroc"] <= 1.0
    # The test labels choose nothing: other test labels, the same temperature and model.
    shuffled = np.random.default_rng(2).permutation(test_labels)
    again = confidence_report(
        dev_logits, dev_labels, test_logits, shuffled,
        dev_texts=dev_texts, test_texts=test_texts, train_texts=dev_texts[:50],
    )  # fmt: skip
    assert again["temperature"] == report["temperature"]
    assert again["confidence_model"] == report["confidence_model"]


def test_error_auroc_ranks_wrong_rows_by_low_confidence():
    confidence = np.asarray([0.9, 0.8, 0.3, 0.2])
    assert error_auroc(confidence, np.asarray([True, True, False, False])) == 1.0
    assert error_auroc(confidence, np.asarray([False, False, True, True])) == 0.0
    assert error_auroc(confidence, np.asarray([True, True, True, True])) is None
