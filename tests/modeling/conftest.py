"""Fixtures for modeling tests: toy blinded examples and one tiny trained model version."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeling.backbones import TINY_RANDOM_BERT
from modeling.config import TrainConfig
from modeling.training import TrainExample, TrainResult, train

# Each class gets its own verbs so even a tiny random model can separate them a little.
_VERBS = {
    0: ("increase", "raise", "boost"),
    1: ("decrease", "lower", "reduce"),
    2: ("block", "stop", "halt"),
    3: ("alter", "shift", "change"),
    4: ("mention", "list", "note"),
}
_EFFECTS = ("sedative", "hypotensive", "anticoagulant", "diuretic")


def make_examples(classes: list[str], per_class: int) -> list[TrainExample]:
    """Deterministic blinded toy sentences, ``per_class`` per class."""
    examples = []
    for c, name in enumerate(classes):
        verbs = _VERBS[c % len(_VERBS)]
        for i in range(per_class):
            verb = verbs[i % len(verbs)]
            effect = _EFFECTS[(i // len(verbs)) % len(_EFFECTS)]
            text = f"DRUG_A may {verb} the {effect} activities of DRUG_B."
            examples.append(TrainExample(text=text, label=name))
    return examples


def tiny_config(**overrides) -> TrainConfig:
    """A TrainConfig on the tiny random BERT that trains in well under a second."""
    values = {
        "backbone": TINY_RANDOM_BERT,
        "epochs": 3,
        "batch_size": 8,
        "learning_rate": 5e-3,
        "max_length": 32,
    }
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> tuple[TrainResult, list[TrainExample]]:
    """One tiny two-class model version trained once per test session (tests copy it before
    writing into it)."""
    examples = make_examples(["Synergistic", "Antagonistic"], per_class=12)
    out_dir: Path = tmp_path_factory.mktemp("tiny-model")
    result = train(
        examples, classes=["Synergistic", "Antagonistic"], config=tiny_config(), out_dir=out_dir
    )
    return result, examples
