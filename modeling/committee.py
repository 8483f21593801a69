"""The committee of cross-fitted members: fold assignment, member files, scoring with a member's
weights, the out-of-fold answers and the committee's metrics and confidence model.

training.train() drives these; nothing here trains."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from modeling.calibration import softmax_with_temperature
from modeling.checkpoints import (
    CheckpointMismatch,
)
from modeling.classifier import (
    MeanPoolClassifier,
    load_trainable_state,
)
from modeling.config import TrainConfig
from modeling.encoding import encode, pad_batch
from modeling.metrics import classification_metrics, confidence_ece
from modeling.uncertainty import (
    ConfidenceModel,
    LabelledSet,
    direction_disagreement,
    direction_twin,
    feature_matrix,
    fit_confidence_model,
)


def predict_logits(
    model: MeanPoolClassifier, sequences: Sequence[Sequence[int]], pad_id: int, batch_size: int
) -> np.ndarray:
    """Logits (n, C) in eval mode, on the model's device; puts the model back in train mode."""
    device = model_device(model)
    model.eval()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(sequences), batch_size):
            input_ids, mask = pad_batch(sequences[start : start + batch_size], pad_id)
            logits = model(input_ids.to(device), mask.to(device))
            chunks.append(logits.float().cpu().numpy())
    model.train()
    if not chunks:
        return np.zeros((0, model.head.out_features), dtype=np.float32)
    return np.concatenate(chunks)


def model_device(model: MeanPoolClassifier) -> torch.device:
    """The device the model's weights live on."""
    return next(model.parameters()).device


def assign_folds(
    labels: np.ndarray, texts: Sequence[str], folds: int, seed: int
) -> tuple[np.ndarray, str]:
    """Fold number per example (grouped by text, stratified by class) and a note.

    A text never sits in two folds, so its out-of-fold prediction comes from a member that never
    saw it. The number of folds is lowered to the smallest class's count of distinct texts when
    that is below ``folds``; below 2 there is no cross-fitting (every example gets fold -1, one
    member trains on everything) and the note says why.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    distinct = {}
    for text, label in zip(texts, labels.tolist(), strict=True):
        distinct.setdefault(label, set()).add(text)
    fewest = min(len(group) for group in distinct.values())
    k = min(folds, fewest)
    if folds < 2 or k < 2 or len(distinct) < 2:
        why = "folds < 2" if folds < 2 else f"a class has {fewest} distinct text(s)"
        note = f"no cross-fitting: {why}; one model trained on all labels, no out-of-fold score"
        return np.full(len(labels), -1, dtype=np.int64), note
    note = (
        ""
        if k == folds
        else f"{k} folds instead of {folds}: a class has only {fewest} distinct texts"
    )
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    assignment = np.empty(len(labels), dtype=np.int64)
    for fold, (_, held) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups=texts)):
        assignment[held] = fold
    return assignment, note


def _fold_file(checkpoint_dir: Path, fold: int) -> Path:
    return Path(checkpoint_dir) / f"member-{fold}.safetensors"


def _save_member(path: Path, identity: dict, state: dict[str, torch.Tensor], oof: dict) -> None:
    """A finished member and its out-of-fold scores, atomically (what a resume skips)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    meta = {"oof": json.dumps(oof), "identity": json.dumps(identity, sort_keys=True)}
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), meta)
    os.replace(tmp, path)


def _load_member(path: Path, identity: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """A finished member of THIS run (same config, classes and data), else CheckpointMismatch."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
        if meta.get("identity") != json.dumps(json.loads(json.dumps(identity)), sort_keys=True):
            raise CheckpointMismatch(
                f"{path} belongs to another training run (config, classes or data differ); "
                "use a fresh checkpoint folder"
            )
        oof = json.loads(meta["oof"])
        state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    return state, oof


def _score_texts(
    model: MeanPoolClassifier, tokenizer, texts: Sequence[str], config: TrainConfig, pad_id: int
) -> np.ndarray:
    """Probabilities of (distinct) texts under the model's current weights."""
    if not texts:
        return np.zeros((0, model.head.out_features), dtype=np.float32)
    logits = predict_logits(model, encode(tokenizer, list(texts), config.max_length), pad_id, 64)
    return softmax_with_temperature(logits, 1.0)


def _out_of_fold(
    model,
    tokenizer,
    config,
    pad_id,
    held_texts: list[str],
    train_texts: Sequence[str],
    probe: bool,
    held_labels: Sequence[int] = (),
    labelled_texts: frozenset[str] = frozenset(),
) -> dict:
    """The member's scores of the texts it did not see, with novelty against what it saw.

    With the direction probe, each held-out text's twin (direction words swapped) is a second
    held-out example whose class is known: the opposite of the text's label, for two classes that
    are opposite directions. ``twin_rows`` holds its features and whether the member got it
    right (twins that are themselves labelled texts are left out: they are scored as texts).
    They give the confidence model evidence on exactly the failure it must catch, a sentence read
    the wrong way round, where the held-out texts alone are a dozen rows.
    """
    probs = _score_texts(model, tokenizer, held_texts, config, pad_id)
    twins = [direction_twin(t) if probe else None for t in held_texts]
    with_twin = [i for i, twin in enumerate(twins) if twin is not None]
    twin_probs = np.full(probs.shape, np.nan, dtype=np.float64)
    if with_twin:
        scored = _score_texts(model, tokenizer, [twins[i] for i in with_twin], config, pad_id)
        twin_probs[with_twin] = scored
    labelled = LabelledSet.of(train_texts)
    if labelled.seen(held_texts).any():
        raise AssertionError("a held-out text is in its member's training texts")
    direction = direction_disagreement(probs, twin_probs)
    twin_rows = []
    for i in with_twin if len(held_labels) == len(held_texts) else []:
        if twins[i] in labelled_texts:
            continue
        row = twin_probs[i : i + 1]
        features = feature_matrix(row, labelled.novelty([twins[i]]), direction[i : i + 1])
        correct = int(row.argmax()) == 1 - int(held_labels[i])
        twin_rows.append({"features": features[0].tolist(), "correct": bool(correct)})
    return {
        "texts": held_texts,
        "probs": probs.tolist(),
        "direction": direction.tolist(),
        "novelty": labelled.novelty(held_texts).tolist(),
        "twin_rows": twin_rows,
    }


def _committee_metrics(
    examples, labels, classes, oof, members, model, tokenizer, config, pad_id, twin_rows=()
) -> tuple[dict, ConfidenceModel]:
    """Out-of-fold score, the committee's in-sample fit, and the confidence model.

    The confidence model's regression is fitted on the out-of-fold rows, one per distinct text
    (a text none of the scoring member's training texts was; novelty against that member's
    texts): that is the regime of every text nobody labelled. For labelled texts it uses the
    committee's in-sample accuracy over the labelled rows (see ConfidenceModel.confidence).
    """
    texts = [e.text for e in examples]
    y = labels
    first_row: dict[str, int] = {}  # each distinct text's first labelled row
    for i, text in enumerate(texts):
        first_row.setdefault(text, i)
    distinct = list(first_row)
    row_of = {t: i for i, t in enumerate(distinct)}
    member_probs = []
    for member in members:
        load_trainable_state(model, member)
        member_probs.append(_score_texts(model, tokenizer, distinct, config, pad_id))
    mean = np.mean(member_probs, axis=0)
    fitted = mean[[row_of[t] for t in texts]].argmax(axis=1)
    in_sample = classification_metrics(y, fitted, classes)
    right = int((fitted == y).sum())
    seen_accuracy = (right + 0.5) / (len(y) + 1.0)
    metrics: dict = {}
    if oof:
        # Scores per labelled example (repeated texts count as often as they were labelled).
        probs = np.asarray([oof[t]["probs"] for t in texts])
        feats = feature_matrix(
            probs,
            [oof[t]["novelty"] for t in texts],
            np.asarray([oof[t]["direction"] for t in texts]),
        )
        correct = probs.argmax(axis=1) == y
        # Fitted on distinct texts: a pattern labelled 12 times is one piece of evidence. The
        # held-out direction twins of known class join them (see _out_of_fold).
        rows = list(first_row.values())
        fit_x = np.vstack([feats[rows]] + [np.asarray([r["features"]]) for r in twin_rows])
        fit_y = np.concatenate([correct[rows], np.asarray([r["correct"] for r in twin_rows], bool)])
        confidence_model = fit_confidence_model(fit_x, fit_y, seen_accuracy=seen_accuracy)
        # Kept for ablations (bench/uncertainty.py refits on subsets of the features).
        metrics["_fit_rows"] = {
            "features": fit_x.tolist(),
            "correct": fit_y.tolist(),
            "seen_accuracy": seen_accuracy,
            "twin_rows": len(twin_rows),
        }
        metrics["confidence_fit"] = {"texts": len(rows), "direction_twins": len(twin_rows)}
        metrics.update(classification_metrics(y, probs.argmax(axis=1), classes))
        metrics["evaluated_on"] = "out-of-fold"
        metrics["ece"] = confidence_ece(confidence_model.predict(feats), correct)
        metrics["ece_softmax"] = confidence_ece(probs.max(axis=1), correct)
    else:
        confidence_model = fit_confidence_model(
            np.zeros((0, 3)), np.zeros(0, dtype=bool), seen_accuracy=seen_accuracy
        )
        metrics.update(
            {k: in_sample[k] for k in ("accuracy", "macro_f1", "per_class", "confusion_matrix")}
        )
        metrics["evaluated_on"] = "in-sample (no cross-fitting)"
    metrics["in_sample"] = {"accuracy": in_sample["accuracy"], "macro_f1": in_sample["macro_f1"]}
    metrics["confidence_model"] = confidence_model.to_dict()
    return metrics, confidence_model
