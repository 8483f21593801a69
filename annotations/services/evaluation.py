"""Evaluation of a model version's predictions against reference labels of one split.

The reference of an interaction is its held-out class (``extra["reference_label"]``, written by
imports with held_out_splits, e.g. the DDI-2013 test split) or else its labeled Label. Scores are
the DDI-2013 shared-task ones (micro P/R/F1 over the positive classes, per-class scores) plus
accuracy and a confusion matrix over all classes. Read-only: safe to run any number of times.
"""

from __future__ import annotations

from collections.abc import Sequence

from annotations.exceptions import EvaluationError, NoActiveModelVersion
from annotations.models import Interaction, Label, ModelVersion, Prediction, Project
from annotations.services.ml import classification_metrics, micro_prf

NEGATIVE_CLASS_NAMES = ("negative", "none", "false", "no interaction")


def default_positive_classes(classes: Sequence[str]) -> list[str]:
    """Every class but the "no relation" one(s) (named negative/none/...); all if none is."""
    positives = [c for c in classes if c.casefold() not in NEGATIVE_CLASS_NAMES]
    return positives if positives and len(positives) < len(classes) else list(classes)


def evaluate_model_version(
    *,
    project: Project,
    split: str | None = "test",
    model_version: ModelVersion | None = None,
    positive_classes: Sequence[str] | None = None,
) -> dict:
    """Score `model_version` (default: the active one) on the interactions of `split`.

    `split=None` scores every interaction that has a reference. Interactions without a
    prediction from the version are counted in ``missing_predictions`` and left out (run a
    pseudo-labeling first). Raises NoActiveModelVersion / EvaluationError with a readable message.
    """
    classes = list(project.label_classes)
    model_version = model_version or _active_version(project)
    positives = list(positive_classes or default_positive_classes(classes))
    unknown = sorted(set(positives) - set(classes))
    if unknown:
        raise EvaluationError(
            f"positive classes {', '.join(unknown)} are not classes of {project.name!r} "
            f"({', '.join(classes)})"
        )
    interactions = Interaction.objects.filter(project=project)
    if split is not None:
        interactions = interactions.filter(split=split)
    references = _references(interactions)
    if not references:
        where = f"split {split!r}" if split else "the project"
        raise EvaluationError(
            f"no reference labels in {where} of {project.name!r}: import the split's labels "
            "(held-out reference labels or seed/review labels) first"
        )
    predicted = dict(
        Prediction.objects.filter(model_version=model_version, interaction__in=interactions)
        .values_list("interaction_id", "predicted_class")
        .iterator(chunk_size=5000)
    )
    scored = sorted(set(references) & set(predicted))
    y_true = [references[i] for i in scored]
    y_pred = [predicted[i] for i in scored]
    outside = sorted({label for label in y_true + y_pred if label not in classes})
    if outside:
        raise EvaluationError(f"labels {', '.join(outside)} are not classes of {project.name!r}")
    scores = micro_prf(y_true, y_pred, positive_classes=positives) if scored else None
    index = {name: i for i, name in enumerate(classes)}
    overall = classification_metrics(
        [index[c] for c in y_true], [index[c] for c in y_pred], classes
    )
    return {
        "project": project.name,
        "model_version": model_version.number,
        "backbone": model_version.backbone,
        "split": split,
        "n_references": len(references),
        "n_scored": len(scored),
        "missing_predictions": len(references) - len(scored),
        "positive_classes": positives,
        "micro": scores["micro"] if scores else None,
        "macro_f1": scores["macro_f1"] if scores else None,
        "per_class": scores["per_class"] if scores else {},
        "accuracy": overall["accuracy"],
        "classes": classes,
        "confusion_matrix": overall["confusion_matrix"],
    }


def _active_version(project: Project) -> ModelVersion:
    version = ModelVersion.objects.active_for(project)
    if version is None:
        raise NoActiveModelVersion(
            f"project {project.name!r} has no active model version: train one first"
        )
    return version


def _references(interactions) -> dict[int, str]:
    """interaction id -> reference class: the held-out label, else a labeled Label."""
    references = {
        pk: label
        for pk, label in interactions.filter(extra__has_key="reference_label")
        .values_list("pk", "extra__reference_label")
        .iterator(chunk_size=5000)
        if label
    }
    labeled = Label.objects.filter(
        interaction__in=interactions, status=Label.Status.LABELED
    ).values_list("interaction_id", "label_class")
    for pk, label in labeled.iterator(chunk_size=5000):
        references.setdefault(pk, label)
    return references
