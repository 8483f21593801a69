"""LoRA fine-tuning of a committee of backbone classifiers on blinded texts, cross-fitted.

The loop reads top to bottom: assign folds -> build -> for each member (fresh adapter, epochs of
shuffled steps, score the held-out fold) -> fit the confidence model out of fold -> metrics ->
save the model version with its members.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup

from modeling.artifacts import OOF_FILE, data_fingerprint, save_model_version, write_json_atomic
from modeling.batches import collapse_batch, weighted_batch_loss
from modeling.checkpoints import (
    LoopState,
    load_checkpoint,
    peek_checkpoint,
    save_checkpoint,
)
from modeling.classifier import (
    MeanPoolClassifier,
    build_classifier,
    load_trainable_state,
    trainable_state,
)
from modeling.committee import (
    _committee_metrics,
    _fold_file,
    _load_member,
    _out_of_fold,
    _save_member,
    assign_folds,
    model_device,
)
from modeling.config import TrainConfig
from modeling.devices import resolve_device
from modeling.encoding import encode, pad_batch, pad_id_of
from modeling.uncertainty import (
    LabelledSet,
    text_key,
)


@dataclass(frozen=True)
class TrainExample:
    """One labelled training text; ``text`` is already blinded."""

    text: str
    label: str


@dataclass(frozen=True)
class TrainProgress:
    """Reported after every optimisation step (epochs and steps count from 1)."""

    epoch: int
    step: int
    total_steps: int
    loss: float
    member: int = 1  # the committee member in training (counts from 1)
    members: int = 1


@dataclass(frozen=True)
class TrainResult:
    """Where the model version was written and its validation metrics."""

    artifact_dir: Path
    metrics: dict


ProgressCallback = Callable[[TrainProgress], None]


@contextmanager
def deterministic_torch(seed: int) -> Iterator[None]:
    """Seed torch and demand deterministic kernels inside; restores the caller's RNG and mode."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.use_deterministic_algorithms(previous)


def validate_examples(examples: Sequence[TrainExample], classes: Sequence[str]) -> list[str]:
    """The class list, checked: >= 2 distinct names, every example label among them."""
    classes = list(classes)
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be >= 2 distinct names, got {classes}")
    if not examples:
        raise ValueError("no training examples")
    unknown = sorted({e.label for e in examples} - set(classes))
    if unknown:
        raise ValueError(f"labels not in classes {classes}: {unknown}")
    return classes


def class_weights(label_ids: Sequence[int], num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights n / (k * count) over the k present classes; absent ones get 1."""
    counts = np.bincount(np.asarray(label_ids, dtype=np.int64), minlength=num_classes)
    present = max(int((counts > 0).sum()), 1)
    weights = np.ones(num_classes, dtype=np.float32)
    mask = counts > 0
    weights[mask] = len(label_ids) / (present * counts[mask])
    return torch.as_tensor(weights)


def build_optimizer(model: MeanPoolClassifier, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable (LoRA + head) parameters only."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """Shuffled order for one epoch, a pure function of (seed, epoch): resuming needs no RNG."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


@dataclass(frozen=True)
class _Phase:
    """One pass of the training loop: which texts, how many epochs, validated or not."""

    number: int  # LoopState.phase
    seqs: list
    y: np.ndarray
    epochs: int
    weights: torch.Tensor | None  # per class

    def steps(self, batch_size: int) -> int:
        """Optimisation steps of the whole phase."""
        return math.ceil(len(self.seqs) / batch_size) * self.epochs

    def groups(self) -> list[int]:
        """Per example, the id of its (token sequence, label) pair: equal ids are copies."""
        ids: dict[tuple, int] = {}
        return [
            ids.setdefault((tuple(seq), int(y)), len(ids))
            for seq, y in zip(self.seqs, self.y.tolist(), strict=True)
        ]


@dataclass
class _Loop:
    """What every phase shares: the model, config, callbacks and the checkpoint folder."""

    model: MeanPoolClassifier
    config: TrainConfig
    pad_id: int
    identity: dict
    checkpoint_dir: Path | None
    on_progress: ProgressCallback | None
    total_steps: int  # of all phases together (progress is one bar over the whole training)
    members: int = 1

    @property
    def checkpointing(self) -> bool:
        return self.checkpoint_dir is not None and self.config.checkpoint_every_steps > 0

    def run(self, phase: _Phase, state: LoopState, resume: bool) -> LoopState:
        """Train ``phase`` from ``state`` (or from the checkpoint when ``resume``) to its end."""
        config, model = self.config, self.model
        phase_steps = phase.steps(config.batch_size)
        optimizer = build_optimizer(model, config)
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(config.warmup_fraction * phase_steps), phase_steps
        )
        if resume:
            state = load_checkpoint(
                Path(self.checkpoint_dir), self.identity, model, optimizer, scheduler
            )
        device = model_device(model)
        targets = torch.as_tensor(phase.y).to(device)
        weights = phase.weights.to(device) if phase.weights is not None else None
        groups = phase.groups()
        total_steps = self.total_steps
        model.train()
        while state.epoch < phase.epochs:
            order = epoch_order(len(phase.seqs), config.seed + phase.number, state.epoch)
            batches = [
                order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)
            ]
            for batch in batches[state.batches_done :]:
                rows, copies = collapse_batch(batch, groups)
                input_ids, mask = pad_batch([phase.seqs[i] for i in rows], self.pad_id)
                logits = model(input_ids.to(device), mask.to(device))
                loss = weighted_batch_loss(
                    logits, targets[rows], torch.as_tensor(copies, device=device), weights
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                state = replace(state, step=state.step + 1, batches_done=state.batches_done + 1)
                if self.on_progress is not None:
                    self.on_progress(
                        TrainProgress(
                            state.epoch + 1,
                            state.step,
                            total_steps,
                            float(loss.item()),
                            member=phase.number + 1,
                            members=self.members,
                        )
                    )
                if self.checkpointing and state.step % config.checkpoint_every_steps == 0:
                    save_checkpoint(
                        Path(self.checkpoint_dir),
                        self.identity,
                        state,
                        model,
                        optimizer,
                        scheduler,
                    )
            state = replace(
                state, epoch=state.epoch + 1, epochs_run=state.epochs_run + 1, batches_done=0
            )
        return state


def train(
    examples: Sequence[TrainExample],
    *,
    classes: Sequence[str],
    config: TrainConfig,
    out_dir: Path,
    on_progress: ProgressCallback | None = None,
    checkpoint_dir: Path | None = None,
    device: str | None = None,
) -> TrainResult:
    """Cross-fit a committee, fit its confidence model out of fold, save the model version.

    The labelled texts are split into ``config.folds`` folds (grouped by text, stratified by
    class; see assign_folds). Member k trains a fresh LoRA adapter on every fold but k for
    ``config.epochs`` epochs and scores fold k, which it never saw: those out-of-fold predictions
    are the version's honest score (accuracy, macro-F1, per class, confusion matrix) and the data
    the confidence model (modeling.uncertainty) is fitted on. The members are served together:
    the version's probabilities are their mean, so the score, the fitted confidence model and
    what is served belong to the same committee. The in-sample fit of the committee is reported
    beside the out-of-fold score.

    ``device``: see modeling.devices.resolve_device (default ``auto``: a CUDA GPU when present).

    Side effects: writes the model version folder and, with ``checkpoint_dir`` and
    ``config.checkpoint_every_steps > 0``, checkpoints and finished members there. Safe to run
    twice: a second call with the same checkpoint_dir resumes (finished members are reloaded, the
    member in progress continues from its checkpoint) and reaches the same weights.
    """
    started = time.perf_counter()
    target_device = resolve_device(device)
    classes = validate_examples(examples, classes)
    index = {name: i for i, name in enumerate(classes)}
    labels = np.asarray([index[e.label] for e in examples], dtype=np.int64)
    fingerprint = data_fingerprint((e.text, e.label) for e in examples)
    texts = [e.text for e in examples]
    assignment, fold_note = assign_folds(labels, texts, config.folds, config.seed)
    fold_ids = sorted(set(assignment.tolist()))
    probe = config.direction_probe and len(classes) == 2
    with deterministic_torch(config.seed):
        tokenizer, model = build_classifier(config, len(classes))
        model = model.to(target_device)
        initial = trainable_state(model)  # every member starts from the same initial adapter
        pad_id = pad_id_of(tokenizer)
        sequences = encode(tokenizer, texts, config.max_length)

        def phase_for(number: int, idx: list[int]) -> _Phase:
            ids = labels[idx].tolist()
            return _Phase(
                number=number,
                seqs=[sequences[i] for i in idx],
                y=labels[idx],
                epochs=config.epochs,
                weights=class_weights(ids, len(classes)) if config.class_weighting else None,
            )

        trains = {f: [i for i in range(len(texts)) if assignment[i] != f] for f in fold_ids}
        if fold_ids == [-1]:
            trains = {-1: list(range(len(texts)))}
        phases = [phase_for(n, trains[f]) for n, f in enumerate(fold_ids)]
        loop = _Loop(
            model=model,
            config=config,
            pad_id=pad_id,
            identity={"config": config.to_dict(), "classes": classes, "data": fingerprint},
            checkpoint_dir=checkpoint_dir,
            on_progress=on_progress,
            total_steps=sum(p.steps(config.batch_size) for p in phases),
            members=len(phases),
        )
        resumed = peek_checkpoint(Path(checkpoint_dir)) if loop.checkpointing else None
        state = LoopState()
        members: list[dict[str, torch.Tensor]] = []
        oof: dict[str, dict] = {}  # text -> the out-of-fold scores of that text
        twin_rows: list[dict] = []  # held-out twins of known class (see _out_of_fold)
        first_label: dict[str, int] = {}
        for text, label in zip(texts, labels.tolist(), strict=True):
            first_label.setdefault(text, label)
        for phase, fold in zip(phases, fold_ids, strict=True):
            saved = _fold_file(checkpoint_dir, phase.number) if loop.checkpointing else None
            if saved is not None and saved.is_file():
                member, scores = _load_member(saved, loop.identity)
                state = replace(
                    state,
                    step=state.step + phase.steps(config.batch_size),
                    epochs_run=state.epochs_run + phase.epochs,
                )
            else:
                in_this = resumed is not None and resumed.phase == phase.number
                if not in_this:
                    load_trainable_state(model, initial)
                    torch.manual_seed(config.seed + phase.number)
                    state = replace(
                        state,
                        phase=phase.number,
                        epoch=0,
                        batches_done=0,
                        phase_start_step=state.step,
                    )
                state = loop.run(phase, state, resume=in_this)
                member = trainable_state(model)
                held = (
                    []
                    if fold == -1
                    else list(
                        dict.fromkeys(texts[i] for i in range(len(texts)) if assignment[i] == fold)
                    )
                )
                train_texts = [texts[i] for i in trains[fold]]
                scores = _out_of_fold(
                    model,
                    tokenizer,
                    config,
                    pad_id,
                    held,
                    train_texts,
                    probe,
                    held_labels=[first_label[t] for t in held],
                    labelled_texts=frozenset(texts),
                )
                if saved is not None:
                    _save_member(saved, loop.identity, member, scores)
            members.append(member)
            for i, text in enumerate(scores["texts"]):
                oof[text] = {k: scores[k][i] for k in ("probs", "direction", "novelty")}
            twin_rows.extend(scores.get("twin_rows", []))  # absent in older checkpoints

        metrics, confidence_model = _committee_metrics(
            examples, labels, classes, oof, members, model, tokenizer, config, pad_id, twin_rows
        )
        fit_rows = metrics.pop("_fit_rows", None)
        metrics.update(
            folds=len(members) if fold_ids != [-1] else 0,
            cross_fit_note=fold_note,
            direction_probe=probe,
            n_train=len(texts),
            n_distinct_texts=len(set(texts)),
            epochs_run=state.epochs_run,
            device=str(target_device),
            train_seconds=round(time.perf_counter() - started, 3),
        )
        save_model_version(
            Path(out_dir),
            state=members[0],
            classes=classes,
            temperature=1.0,
            config=config,
            metrics=metrics,
            fingerprint=fingerprint,
            committee={
                "members": members,
                "confidence_model": confidence_model.to_dict(),
                "direction_probe": probe,
                "labelled": LabelledSet.of(texts, labels.tolist()).to_dict(),
            },
        )
        if fit_rows is not None:
            predictions = {text_key(t): int(np.argmax(v["probs"])) for t, v in oof.items()}
            write_json_atomic(
                Path(out_dir) / OOF_FILE, {"fit_rows": fit_rows, "predictions": predictions}
            )
    return TrainResult(artifact_dir=Path(out_dir), metrics=metrics)
