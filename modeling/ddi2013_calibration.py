"""The confidence of DDI-2013 predictions: fitted on the dev split, measured on the test split.

Three confidences of the predicted class, each scored by ECE (equal-width bins, as the app's
``modeling.metrics``) and by the AUROC of ``1 - confidence`` for "this pair is predicted wrong"
(the review queue puts the least confident first, so this is how well it finds the errors):

- ``raw``: the softmax top probability;
- ``temperature``: softmax(logits / T), T fitted on the dev logits (``modeling.calibration``);
- ``app``: the app's confidence model (``modeling.uncertainty.fit_confidence_model``: logistic
  regression of correctness on the temperature-scaled top probability and the text's novelty
  against the train texts), fitted on the dev predictions. Its third signal, the direction twin,
  is for two opposite-direction classes (DrugBank), not for DDI-2013's five: set to 0.

Only the dev split fits anything; the test split is scored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modeling.calibration import fit_temperature, softmax_with_temperature
from modeling.metrics import confidence_ece
from modeling.uncertainty import feature_matrix, fit_confidence_model, novelty, vocabulary

METHODS = ("raw", "temperature", "app")


def error_auroc(confidence: np.ndarray, correct: np.ndarray) -> float | None:
    """AUROC of ``1 - confidence`` as a score for "wrong"; None when all right or all wrong."""
    from sklearn.metrics import roc_auc_score

    wrong = ~np.asarray(correct, dtype=bool)
    if wrong.all() or not wrong.any():
        return None
    return float(roc_auc_score(wrong, 1.0 - np.asarray(confidence, dtype=np.float64)))


def _softmax(logits: np.ndarray) -> np.ndarray:
    return softmax_with_temperature(logits, 1.0).astype(np.float64)


def confidences(
    logits: np.ndarray, texts: Sequence[str], temperature: float, model, vocab
) -> dict[str, np.ndarray]:
    """The three confidences of each row's top class (see the module docstring)."""
    raw = _softmax(logits)
    scaled = softmax_with_temperature(logits, temperature).astype(np.float64)
    fresh = [novelty(t, vocab) for t in texts]
    features = feature_matrix(scaled, fresh, np.zeros(len(texts)))
    return {
        "raw": raw.max(axis=1),
        "temperature": scaled.max(axis=1),
        "app": model.predict(features),
    }


def confidence_report(
    dev_logits: np.ndarray,
    dev_labels: Sequence[int],
    test_logits: np.ndarray,
    test_labels: Sequence[int],
    *,
    dev_texts: Sequence[str],
    test_texts: Sequence[str],
    train_texts: Sequence[str],
) -> dict:
    """Fit T and the app's confidence model on dev; ECE and error AUROC on dev and test."""
    dev_logits = np.asarray(dev_logits, dtype=np.float64)
    test_logits = np.asarray(test_logits, dtype=np.float64)
    dev_labels, test_labels = np.asarray(dev_labels), np.asarray(test_labels)
    temperature = fit_temperature(dev_logits, dev_labels)
    vocab = vocabulary(train_texts)
    dev_scaled = softmax_with_temperature(dev_logits, temperature).astype(np.float64)
    dev_correct = dev_scaled.argmax(axis=1) == dev_labels
    dev_features = feature_matrix(
        dev_scaled, [novelty(t, vocab) for t in dev_texts], np.zeros(len(dev_texts))
    )
    model = fit_confidence_model(dev_features, dev_correct)
    out: dict = {"temperature": temperature, "confidence_model": model.to_dict()}
    for split, logits, labels, texts in (
        ("dev", dev_logits, dev_labels, dev_texts),
        ("test", test_logits, test_labels, test_texts),
    ):
        correct = logits.argmax(axis=1) == labels  # T > 0 never changes the argmax
        conf = confidences(logits, texts, temperature, model, vocab)
        out[split] = {
            "pairs": len(labels),
            "accuracy": float(correct.mean()) if len(labels) else 0.0,
            **{
                m: {
                    "ece": confidence_ece(conf[m], correct),
                    "error_auroc": error_auroc(conf[m], correct),
                }
                for m in METHODS
            },
        }
    return out
