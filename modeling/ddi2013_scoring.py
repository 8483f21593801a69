"""Relation-extraction scoring the way the DDI Extraction 2013 shared task did it.

Micro-averaged precision/recall/F1 over the POSITIVE classes only (DDI-2013: mechanism, effect,
advise, int; "negative" is not a class to find): for each pair,

- predicted positive and equal to the truth: a true positive of that class;
- predicted positive but wrong (truth negative or another positive class): a false positive of
  the predicted class (and, for a wrong positive truth, a false negative of the true class);
- predicted negative while the truth is positive: a false negative of the true class.

Correct negatives count nowhere. Per-class P/R/F1 and their macro average come along.
Pure functions over class-name sequences (and, for the decision offset, logits); any class set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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


# Offsets tried for the negative class's log-probability: a positive offset asks more of a pair
# before it is called a relation (precision up, recall down), a negative one less.
OFFSET_GRID = tuple(round(x * 0.25, 2) for x in range(-8, 17))  # -2.0 .. 4.0


def decide(
    logits, classes: Sequence[str], negative: str = "negative", offset: float = 0.0
) -> list[str]:
    """The class of each row of `logits` once `offset` is added to the negative class's
    log-probability (0: plain argmax)."""
    scores = np.asarray(logits, dtype=np.float64)
    scores = scores - np.logaddexp.reduce(scores, axis=1, keepdims=True)
    scores[:, list(classes).index(negative)] += offset
    return [classes[k] for k in scores.argmax(axis=1)]


def choose_negative_offset(
    logits,
    truth: Sequence[str],
    classes: Sequence[str],
    *,
    positive_classes: Sequence[str],
    filtered_truth: Sequence[str] = (),
    negative: str = "negative",
    grid: Sequence[float] = OFFSET_GRID,
) -> tuple[float, float]:
    """(offset, micro-F1) of the grid offset with the best micro-F1 on these rows (a dev split,
    never the test split); `filtered_truth`: pairs the negative filter dropped, scored as
    predicted negative. Ties go to the offset nearest 0, so plain argmax wins unless an offset
    is strictly better."""
    if len(logits) != len(truth):
        raise ValueError(f"{len(logits)} rows of logits but {len(truth)} true labels")
    every_truth = list(truth) + list(filtered_truth)
    best = (-1.0, 0.0)
    for offset in sorted(grid, key=abs):
        guess = decide(logits, classes, negative, offset) + [negative] * len(filtered_truth)
        f1 = micro_prf(every_truth, guess, positive_classes=positive_classes)["micro"]["f1"]
        if f1 > best[0]:
            best = (f1, float(offset))
    return best[1], best[0]
