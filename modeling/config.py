"""Training configuration: one frozen dataclass shared by the CLI, services and artifacts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

DEFAULT_BACKBONE = "all-minilm-l6-v2"
# Fields of older versions' model.json, read and ignored (the selection split and refit became
# cross-fitting; balance_repeated_texts was measured worse and removed, README "Loop").
RETIRED_FIELDS = frozenset(
    {"validation_fraction", "early_stopping_patience", "refit_on_all", "balance_repeated_texts"}
)


def reject_invalid(config: object, checks: dict[str, bool]) -> None:
    """Raise ValueError naming every field of `config` whose check failed, with its value."""
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        values = ", ".join(f"{name}={getattr(config, name)!r}" for name in bad)
        raise ValueError(f"invalid {type(config).__name__}: {values}")


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of one LoRA fine-tuning run; saved beside each model version and checkpoint."""

    backbone: str = DEFAULT_BACKBONE
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    # Attention projections plus the dense layers of attention output and the feed-forward block.
    target_modules: tuple[str, ...] = field(default=("query", "key", "value", "dense"))
    learning_rate: float = 1e-3
    epochs: int = 12
    batch_size: int = 16
    max_length: int = 64
    seed: int = 13
    class_weighting: bool = True
    # Cross-fitting: members of the committee, each trained on all folds but one and scored on
    # that one (grouped by text). Fewer distinct texts per class than folds lowers the count; 1
    # trains one model on everything with no out-of-fold score (modeling.committee.assign_folds).
    folds: int = 5
    # Two-class projects: score each sentence's twin with increase/decrease etc. swapped
    # (modeling.uncertainty); off for class sets that are not two opposite directions.
    direction_probe: bool = True
    head_dropout: float = 0.1
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    checkpoint_every_steps: int = 0  # 0 = off

    def __post_init__(self) -> None:
        """Reject values that would only fail deep inside training."""
        checks = {
            "lora_r": self.lora_r >= 1,
            "lora_alpha": self.lora_alpha >= 1,
            "lora_dropout": 0.0 <= self.lora_dropout < 1.0,
            "target_modules": len(self.target_modules) >= 1,
            "learning_rate": self.learning_rate > 0,
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "max_length": self.max_length >= 8,
            "folds": 1 <= self.folds <= 20,
            "head_dropout": 0.0 <= self.head_dropout < 1.0,
            "warmup_fraction": 0.0 <= self.warmup_fraction < 1.0,
            "weight_decay": self.weight_decay >= 0,
            "checkpoint_every_steps": self.checkpoint_every_steps >= 0,
        }
        reject_invalid(self, checks)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        data = dataclasses.asdict(self)
        data["target_modules"] = list(self.target_modules)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a to_dict() result; unknown keys are an error, missing keys take defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k not in RETIRED_FIELDS}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {', '.join(unknown)}")
        values = dict(data)
        if "target_modules" in values:
            values["target_modules"] = tuple(values["target_modules"])
        return cls(**values)
