"""Data helpers shared by the unit and e2e tests: data builders and the tiny model.

Plain functions (no fixtures): each test module declares the fixtures it needs explicitly.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from annotations.models import Interaction, Label, ModelVersion, Project

# A few DrugBank-style patterns per class (blinded, as the model sees them).
PATTERNS = {
    "Synergistic": [
        "DRUG_A may increase the anticoagulant activities of DRUG_B.",
        "The serum concentration of DRUG_B can be increased when it is combined with DRUG_A.",
        "The risk or severity of adverse effects can be increased when DRUG_A is combined "
        "with DRUG_B.",
    ],
    "Antagonistic": [
        "DRUG_A may decrease the antihypertensive activities of DRUG_B.",
        "The serum concentration of DRUG_B can be decreased when it is combined with DRUG_A.",
        "The therapeutic efficacy of DRUG_B can be decreased when used in combination with DRUG_A.",
    ],
}
ALL_PATTERNS = [(cls, text) for cls, texts in PATTERNS.items() for text in texts]


def _sha(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def make_interactions(project: Project, n: int, *, start: int = 0) -> list[Interaction]:
    """n interactions cycling through the patterns, with distinct drug names."""
    rows = []
    for i in range(start, start + n):
        _, blinded = ALL_PATTERNS[i % len(ALL_PATTERNS)]
        drug_a, drug_b = f"Alphazol{i}", f"Betamab{i}"
        text = blinded.replace("DRUG_A", drug_a).replace("DRUG_B", drug_b)
        rows.append(
            Interaction(
                project=project,
                drug_a=drug_a,
                drug_b=drug_b,
                description=text,
                blinded_text=blinded,
                pattern_hash=_sha(blinded),
                content_hash=_sha(drug_a, drug_b, text),
            )
        )
    Interaction.objects.bulk_create(rows, batch_size=2000)
    return list(Interaction.objects.filter(project=project).order_by("pk"))


def true_class(interaction: Interaction) -> str:
    """The class of an interaction's pattern."""
    for cls, text in ALL_PATTERNS:
        if text == interaction.blinded_text:
            return cls
    raise ValueError(interaction.blinded_text)


def seed_labels(interactions: list[Interaction], *, source: str = Label.Source.SEED) -> None:
    """A correct seed label on each interaction (test setup, not a review workflow)."""
    Label.objects.bulk_create(
        [Label(interaction=i, label_class=true_class(i), source=source) for i in interactions]
    )


def train_tiny_artifact(out_dir: Path, *, epochs: int = 3) -> Path:
    """Train a tiny-random-bert model version folder on the patterns (a few seconds)."""
    from modeling.config import TrainConfig
    from modeling.training import TrainExample, train

    examples = [TrainExample(text, cls) for cls, text in ALL_PATTERNS] * 4
    config = TrainConfig(backbone="tiny-random-bert", epochs=epochs)
    train(examples, classes=list(PATTERNS), config=config, out_dir=out_dir)
    return out_dir


def ready_version(project: Project, artifact: Path, *, number: int = 1, active=True):
    """A ready ModelVersion row pointing at a trained artifact folder."""
    return ModelVersion.objects.create(
        project=project,
        number=number,
        backbone="tiny-random-bert",
        artifact_path=str(artifact),
        status=ModelVersion.Status.READY,
        is_active=active,
        metrics={"macro_f1": 0.5},
    )
