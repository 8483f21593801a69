"""Promotion: a new model version replaces the active one only when it is better on held-out
human labels (or out-of-fold predictions), never by a side door."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotations.models import (
    Label,
    ModelVersion,
    Project,
    Run,
)
from annotations.services.jobs.lifecycle import result_of
from annotations.services.ml import (
    classification_metrics,
    get_predictor,
    read_out_of_fold,
    text_key,
)

logger = logging.getLogger(__name__)


def human_label_pairs(*, project: Project) -> list[tuple[str, str]]:
    """(blinded text, class) of the project's current human labels, at most
    DDI_PROMOTION_MAX_LABELS of them (evenly spaced by interaction id). Read-only."""
    classes = list(project.label_classes)
    pairs = list(
        Label.objects.filter(
            interaction__project=project, status=Label.Status.LABELED, label_class__in=classes
        )
        .order_by("interaction_id")
        .values_list("interaction__blinded_text", "label_class")
    )
    cap = settings.DDI_PROMOTION_MAX_LABELS
    if len(pairs) > cap:
        pairs = [pairs[i * len(pairs) // cap] for i in range(cap)]
    return pairs


# One-sided z of the paired non-inferiority test on labels the active version never trained on
# (McNemar: 5 % of the time a version no worse than the active one would be refused by chance).
NON_INFERIORITY_Z = 1.645


@dataclass(frozen=True)
class Comparison:
    """Both versions' macro-F1 on the same labels neither was trained on (or their OOF scores).

    `held_out` (labels the active version never saw): `only_new` / `only_old` count the labels
    that only the new version's out-of-fold answer / only the active version gets right."""

    new_f1: float
    old_f1: float | None
    n: int
    basis: str  # in words, for the decision
    held_out: bool = False
    only_new: int = 0
    only_old: int = 0

    @property
    def worse_beyond_chance(self) -> bool:
        """McNemar, one-sided: the active version wins clearly more of the disagreements."""
        disagreements = self.only_new + self.only_old
        margin = NON_INFERIORITY_Z * disagreements**0.5
        return disagreements > 0 and self.only_old - self.only_new > margin


def compare_on_held_out(*, project: Project, new: ModelVersion, active: ModelVersion) -> Comparison:
    """Score the new version and the active one on labels neither of them trained on.

    Those are the human labels whose text the active version never saw: the active version
    predicts them, the new version's out-of-fold prediction is used (it trained on them, so its
    own prediction would be in-sample). With fewer than DDI_PROMOTION_MIN_HELD_OUT such labels,
    both versions' out-of-fold macro-F1 (each on its own training labels) are compared instead.
    Read-only; loads the active version's Predictor (cached per process).
    """
    classes = list(project.label_classes)
    index = {name: i for i, name in enumerate(classes)}
    new_oof = read_out_of_fold(Path(new.artifact_path))
    predictor = get_predictor(active)
    labelled = getattr(predictor, "labelled", None)
    held = [
        (text, label)
        for text, label in human_label_pairs(project=project)
        if text_key(text) in new_oof and labelled is not None and not labelled.seen([text])[0]
    ]
    if len(held) >= settings.DDI_PROMOTION_MIN_HELD_OUT:
        truth = [index[label] for _, label in held]
        probs = predictor.predict_batch([text for text, _ in held])
        old_pred = [index.get(predictor.classes[i], -1) for i in probs.argmax(axis=1)]
        new_pred = [new_oof[text_key(text)] for text, _ in held]
        pairs = list(zip(truth, new_pred, old_pred, strict=True))
        return Comparison(
            new_f1=classification_metrics(truth, new_pred, classes)["macro_f1"],
            old_f1=classification_metrics(truth, old_pred, classes)["macro_f1"],
            n=len(held),
            basis=f"on {len(held)} human labels v{active.number} never trained on "
            f"(v{new.number} out of fold)",
            held_out=True,
            only_new=sum(n == t != o for t, n, o in pairs),
            only_old=sum(o == t != n for t, n, o in pairs),
        )
    old = active.metrics.get("macro_f1") if _is_out_of_fold(active) else None
    return Comparison(
        new_f1=float(new.metrics["macro_f1"]),
        old_f1=old,
        n=int(new.metrics.get("n_train", 0)),
        basis=f"out-of-fold scores (fewer than {settings.DDI_PROMOTION_MIN_HELD_OUT} labels "
        f"v{active.number} never trained on)",
    )


def _who_started(run: Run) -> str:
    if run.created_by_id:
        return f"an admin ({run.created_by.get_username()})"
    if (run.idempotency_key or "").startswith("demo:"):
        return "setup_demo (the demo's first model)"
    return "the command that started the run"


def _is_out_of_fold(version: ModelVersion) -> bool:
    return (version.metrics or {}).get("evaluated_on") == "out-of-fold"


def decide_promotion(*, run: Run, model_version: ModelVersion) -> bool:
    """Make the version active only when it is better, on labels neither version trained on.

    The rule, in order: an admin's force_promote promotes; a version without an out-of-fold
    score (too few distinct texts to cross-fit) is promoted only when no version is active; an
    out-of-fold macro-F1 below DDI_PROMOTION_MIN_MACRO_F1 is refused; with no active version the
    new one is promoted; otherwise both are compared by compare_on_held_out. Better promotes. On
    human labels the active version never trained on, the new version (which trained on them)
    must not be worse beyond chance (a paired one-sided McNemar test, NON_INFERIORITY_Z): its
    out-of-fold answer cannot show what those labels taught it. Without such labels (both
    versions' own out-of-fold scores) a tie keeps the active version: a change that shows no
    gain is not worth the churn of every prediction. Records the decision and the numbers in
    ModelVersion.promotion_decision and Run.result. Safe to run twice.
    """
    force = bool((run.params or {}).get("force_promote"))
    oof_f1 = model_version.metrics.get("macro_f1") if _is_out_of_fold(model_version) else None
    floor = settings.DDI_PROMOTION_MIN_MACRO_F1
    with transaction.atomic():
        active = (
            ModelVersion.objects.select_for_update()
            .active()
            .filter(project_id=model_version.project_id)
            .exclude(pk=model_version.pk)
            .first()
        )
        comparison = None
        if force:
            promote, why = True, f"forced by {_who_started(run)}"
            if oof_f1 is not None:
                below = f", below the floor {floor:.2f}" if oof_f1 < floor else ""
                why += f" (out-of-fold macro-F1 {oof_f1:.3f}{below})"
        elif oof_f1 is None:
            promote = active is None
            why = "no out-of-fold score (too few distinct labeled texts to cross-fit); " + (
                "served because no version is active" if promote else "the active one stays"
            )
        elif oof_f1 < floor:
            promote = False
            why = f"its out-of-fold macro-F1 {oof_f1:.3f} is below the floor {floor:.2f}"
        elif active is None:
            promote, why = True, f"no active version yet (out-of-fold macro-F1 {oof_f1:.3f})"
        else:
            comparison = compare_on_held_out(
                project=model_version.project, new=model_version, active=active
            )
            new_f1, old_f1 = comparison.new_f1, comparison.old_f1
            if old_f1 is None:
                promote = True
                why = f"macro-F1 {new_f1:.3f}; v{active.number} has no out-of-fold score"
            elif new_f1 > old_f1 + 1e-9:
                promote = True
                why = (
                    f"macro-F1 {new_f1:.3f} beats v{active.number}'s {old_f1:.3f} "
                    f"{comparison.basis}"
                )
            else:
                word = "ties" if abs(new_f1 - old_f1) <= 1e-9 else "is below"
                # On labels the active version never saw, the new version trained on every one;
                # its out-of-fold answer cannot credit it for that (on templated text a label
                # teaches exactly its own sentence), so there it must only not be worse beyond
                # chance. Without such labels (a retrain on the same labels) a tie keeps the
                # active version.
                promote = comparison.held_out and not comparison.worse_beyond_chance
                chance = (
                    f" ({comparison.only_old} labels only v{active.number} gets right, "
                    f"{comparison.only_new} only v{model_version.number} out of fold)"
                    if comparison.held_out
                    else ""
                )
                if promote:
                    why = (
                        f"macro-F1 {new_f1:.3f} {word} v{active.number}'s {old_f1:.3f} "
                        f"{comparison.basis}, not worse beyond chance{chance}, and "
                        f"v{model_version.number} learned those labels"
                    )
                else:
                    beyond = ", worse beyond chance" if comparison.held_out else ""
                    why = (
                        f"macro-F1 {new_f1:.3f} {word} v{active.number}'s {old_f1:.3f} "
                        f"{comparison.basis}{beyond}{chance}; the active version stays"
                    )
        decision = f"{'promoted' if promote else 'not promoted'}: {why}"
        if promote:
            if active is not None:
                ModelVersion.objects.filter(pk=active.pk).update(is_active=False)
            ModelVersion.objects.filter(pk=model_version.pk).update(
                is_active=True, promoted_at=timezone.now()
            )
        ModelVersion.objects.filter(pk=model_version.pk).update(promotion_decision=decision)
        result = result_of(run.pk)
        result.update(
            model_version=model_version.pk,
            model_version_number=model_version.number,
            promoted=promote,
            promotion_decision=decision,
            macro_f1=model_version.metrics.get("macro_f1"),
            out_of_fold_macro_f1=oof_f1,
            compared_on=comparison.basis if comparison else None,
            compared_macro_f1=comparison.new_f1 if comparison else None,
            previous_compared_macro_f1=comparison.old_f1 if comparison else None,
            n_compared=comparison.n if comparison else 0,
            only_new_right=comparison.only_new if comparison else 0,
            only_previous_right=comparison.only_old if comparison else 0,
            previous_active_version=active.number if active else None,
            previous_macro_f1=active.metrics.get("macro_f1") if active else None,
        )
        Run.objects.filter(pk=run.pk).update(result=result)
    model_version.refresh_from_db()
    logger.info("%s: %s", model_version, decision)
    return promote
