"""Relation-extraction scoring the way the DDI Extraction 2013 shared task did it.

Micro-averaged precision/recall/F1 over the POSITIVE classes only (DDI-2013: mechanism, effect,
advise, int; "negative" is not a class to find): for each pair,

- predicted positive and equal to the truth: a true positive of that class;
- predicted positive but wrong (truth negative or another positive class): a false positive of
  the predicted class (and, for a wrong positive truth, a false negative of the true class);
- predicted negative while the truth is positive: a false negative of the true class.

Correct negatives count nowhere. Per-class P/R/F1 and their macro average come along.
Pure function over class-name sequences; works for any class set.
"""

from __future__ import annotations

from collections.abc import Sequence


def _prf(tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def micro_prf(
    y_true: Sequence[str], y_pred: Sequence[str], *, positive_classes: Sequence[str]
) -> dict:
    """Micro P/R/F1 over `positive_classes`, per-class scores and their macro-F1, as a dict.

    Keys: ``micro`` (precision, recall, f1, tp, fp, fn), ``per_class`` (the same per positive
    class, plus ``support`` = true count), ``macro_f1`` (mean of the per-class F1), ``n``.
    Raises ValueError on sequences of different lengths or an empty positive class list.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    positives = list(dict.fromkeys(positive_classes))
    if not positives:
        raise ValueError("positive_classes is empty")
    counts = {name: {"tp": 0, "fp": 0, "fn": 0, "support": 0} for name in positives}
    for truth, guess in zip(y_true, y_pred, strict=True):
        if truth in counts:
            counts[truth]["support"] += 1
        if guess == truth:
            if guess in counts:
                counts[guess]["tp"] += 1
            continue
        if guess in counts:
            counts[guess]["fp"] += 1
        if truth in counts:
            counts[truth]["fn"] += 1
    per_class = {
        name: {**_prf(c["tp"], c["fp"], c["fn"]), "support": c["support"]}
        for name, c in counts.items()
    }
    totals = [sum(c[key] for c in counts.values()) for key in ("tp", "fp", "fn")]
    return {
        "micro": _prf(*totals),
        "per_class": per_class,
        "macro_f1": sum(scores["f1"] for scores in per_class.values()) / len(per_class),
        "n": len(y_true),
    }
