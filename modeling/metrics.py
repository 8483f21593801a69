"""Classification metrics and expected calibration error, as JSON-ready dicts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top-class probability with equal-width bins; 0.0 for an empty set."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return 0.0
    return confidence_ece(probs.max(axis=1), probs.argmax(axis=1) == labels, n_bins)


def confidence_ece(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """ECE of a stated P(correct) against what was correct; bins (edges[i], edges[i+1]]."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if len(correct) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]
) -> dict:
    """Accuracy, macro-F1, per-class P/R/F1/support and confusion matrix (rows = true class).

    Macro-F1 averages over the classes present in truth or prediction.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    indices = list(range(len(classes)))
    if len(y_true) == 0:
        zeros = [[0] * len(classes) for _ in classes]
        per_class = {c: {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0} for c in classes}
        return {"accuracy": 0.0, "macro_f1": 0.0, "per_class": per_class, "confusion_matrix": zeros}
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=indices, zero_division=0
    )
    per_class = {
        cls: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, cls in enumerate(classes)
    }
    # Macro-F1 over the classes present in truth or prediction: a class absent from a small
    # validation split should not drag the score to zero for nothing.
    present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    macro_f1 = float(np.mean([f1[i] for i in present]))
    matrix = confusion_matrix(y_true, y_pred, labels=indices)
    return {
        "accuracy": float((y_true == y_pred).mean()),
        "macro_f1": macro_f1,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }
