"""Resumable training checkpoints: one safetensors file, replaced atomically.

Tensors (trainable weights, best weights so far, optimizer moments, torch RNG state) are stored as
safetensors; everything else (loop position, early-stopping bookkeeping, optimizer hyper-parameters,
scheduler state, the run identity) goes as JSON into the safetensors metadata. A single file means
one ``os.replace`` makes the whole checkpoint visible at once: a reader never sees a mix of two.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from modeling.classifier import MeanPoolClassifier, load_trainable_state, trainable_state

CHECKPOINT_FILE = "checkpoint.safetensors"
_META_KEY = "checkpoint"


@dataclass(frozen=True)
class LoopState:
    """Position and early-stopping bookkeeping of the training loop; what a checkpoint restores."""

    epoch: int = 0  # 0-based epoch in progress
    batches_done: int = 0  # batches of that epoch already applied
    step: int = 0  # optimisation steps applied in total
    epochs_run: int = 0
    best_f1: float = -1.0
    best_loss: float = math.inf
    best_epoch: int = 0
    stale_epochs: int = 0
    # 0 = model selection on the train split; 1 = refit on all examples (epoch/batches_done then
    # count the refit's epochs; step keeps counting globally; best_* stay the selection's).
    phase: int = 0
    phase_start_step: int = 0  # global step at which the current phase began
    best_state: dict = field(default_factory=dict, compare=False, repr=False)


class CheckpointMismatch(ValueError):
    """The checkpoint folder belongs to another run (other config, classes or data)."""


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split the optimizer state into tensors (for safetensors) and plain values (for JSON)."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict] = {}
    for index, param_state in state_dict["state"].items():
        for name, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"optim/{index}/{name}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                plain.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "plain": plain}


def save_checkpoint(
    directory: Path,
    identity: dict,
    state: LoopState,
    model: MeanPoolClassifier,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> Path:
    """Write the checkpoint through a temporary file and os.replace (side effect: creates dir)."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model/{k}": v for k, v in trainable_state(model).items()}
    tensors.update({f"best/{k}": v.contiguous() for k, v in state.best_state.items()})
    optim_tensors, optim_plain = _optimizer_tensors(optimizer)
    tensors.update(optim_tensors)
    tensors["rng/torch"] = torch.get_rng_state()
    loop = {f.name: getattr(state, f.name) for f in fields(state) if f.name != "best_state"}
    meta = {
        "identity": identity,
        "loop": loop,
        "optimizer": optim_plain,
        "scheduler": scheduler.state_dict(),
    }
    path = directory / CHECKPOINT_FILE
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(meta)})
    os.replace(tmp, path)
    return path


def _read(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(metadata, tensors) of a checkpoint file."""
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()[_META_KEY])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    return meta, tensors


def _restore_optimizer(optimizer: torch.optim.Optimizer, meta: dict, tensors: dict) -> None:
    """Rebuild the optimizer state dict from its tensor and JSON halves and load it."""
    per_param: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            per_param.setdefault(int(index), {})[name] = value
    for index, values in meta["plain"].items():
        per_param.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": per_param, "param_groups": meta["param_groups"]})


def peek_checkpoint(directory: Path) -> LoopState | None:
    """The loop position stored in the checkpoint (metadata only, no tensors); None if none."""
    path = directory / CHECKPOINT_FILE
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()[_META_KEY])
    return _loop_state(meta)


def _loop_state(meta: dict) -> LoopState:
    """The LoopState of a checkpoint's metadata (fields it does not know are ignored)."""
    known = {f.name for f in fields(LoopState)}
    return LoopState(**{k: v for k, v in meta["loop"].items() if k in known})


def load_checkpoint(
    directory: Path,
    identity: dict,
    model: MeanPoolClassifier,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> LoopState | None:
    """Restore model, optimizer, scheduler and RNG from the checkpoint; None when there is none.

    Side effects: mutates the model, optimizer, scheduler and the global torch RNG state.
    Raises CheckpointMismatch when the checkpoint was written by a different run.
    """
    path = directory / CHECKPOINT_FILE
    if not path.is_file():
        return None
    meta, tensors = _read(path)
    if meta["identity"] != json.loads(json.dumps(identity)):
        raise CheckpointMismatch(
            f"{path} belongs to another training run (config, classes or data differ); "
            "use a fresh checkpoint folder"
        )
    load_trainable_state(
        model, {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    )
    _restore_optimizer(optimizer, meta["optimizer"], tensors)
    scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng/torch"])
    best = {k[len("best/") :]: v for k, v in tensors.items() if k.startswith("best/")}
    return replace(_loop_state(meta), best_state=best)
