"""What a training learns from: human and seed/import labels, optionally confident pseudo-labels."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Exists, Min, OuterRef

from annotations.models import (
    HUMAN_SOURCES,
    Interaction,
    Label,
    LabelEvent,
    ModelVersion,
    Prediction,
    Project,
)
from annotations.services.ml import (
    make_train_example,
)


@dataclass
class TrainingData:
    """Training examples plus the counts recorded in Run.result."""

    examples: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)


def gather_training_examples(
    *, project: Project, include_pseudo_labels_above: float | None = None
) -> TrainingData:
    """Human review labels + seed/import labels, optionally confident pseudo-labels.

    Pseudo-labels come from the active version, highest confidence first (capped at
    DDI_MAX_PSEUDO_LABEL_EXAMPLES), and never for an interaction that has a label of any status
    (a reviewer's class wins, an "unclear" flag excludes it) or any review event (a reviewer
    looked at it and rejected, changed or undid something). Read-only.
    """
    classes = set(project.label_classes)
    examples = []
    counts = {"review": 0, "seed": 0, "import": 0, "pseudo": 0, "skipped_unknown_class": 0}
    labels = Label.objects.filter(
        interaction__project=project, status=Label.Status.LABELED
    ).values_list("interaction__blinded_text", "label_class", "source")
    for text, label_class, source in labels.order_by("interaction_id").iterator():
        if label_class not in classes:
            counts["skipped_unknown_class"] += 1
            continue
        examples.append(make_train_example(text=text, label=label_class))
        counts[source] = counts.get(source, 0) + 1
    active = ModelVersion.objects.active_for(project)
    if include_pseudo_labels_above is not None and active is not None:
        has_label = Label.objects.filter(interaction=OuterRef("interaction"))
        was_reviewed = LabelEvent.objects.filter(
            interaction=OuterRef("interaction"), source__in=HUMAN_SOURCES
        )
        pseudo = (
            Prediction.objects.filter(
                model_version=active,
                confidence__gte=include_pseudo_labels_above,
                predicted_class__in=classes,
            )
            .filter(~Exists(has_label), ~Exists(was_reviewed))
            .order_by("-confidence", "interaction_id")
            .values_list("interaction__blinded_text", "predicted_class")
        )
        for text, label_class in pseudo[: settings.DDI_MAX_PSEUDO_LABEL_EXAMPLES]:
            examples.append(make_train_example(text=text, label=label_class))
            counts["pseudo"] += 1
    counts["total"] = len(examples)
    return TrainingData(examples=examples, counts=counts)


# The int8 gate needs >= 200 distinct held-out texts (half of what it reads); more than this
# many only slows the measurement.
GATE_TEXTS = 3000


def int8_gate_texts(project: Project, limit: int = GATE_TEXTS) -> list[str]:
    """Up to ``limit`` distinct blinded texts of the project's interactions, the first by pattern
    hash (a spread over the project, not the latest import): what the int8 gate is measured on,
    so it vouches for the texts int8 will score, not only for the labelled ones."""
    rows = (
        Interaction.objects.filter(project=project)
        .values("pattern_hash")
        .annotate(text=Min("blinded_text"))
        .order_by("pattern_hash")[:limit]
    )
    return [row["text"] for row in rows]
