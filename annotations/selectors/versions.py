"""Which model version's predictions the queue, review, final labels and dashboard use."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q

from annotations.models import ModelVersion, Prediction, Project, Run


def get_serving_model_version(*, project: Project) -> ModelVersion | None:
    """The active version once it has predictions and its pseudo-labeling has ended; until then
    the newest once-promoted version that has them (the active one when none has any).

    Why: a promoted version starts with no predictions (a train-only run, or a retrain whose
    pseudo-labeling is still running). Switching the queue to it at once would show "nothing
    left to review" and final labels without a model class; this keeps the previous version's
    predictions in use until the new ones are all written, then switches.
    """
    has_predictions = Exists(Prediction.objects.filter(model_version=OuterRef("pk")))
    labeling = Exists(
        Run.objects.filter(
            model_version=OuterRef("pk"),
            kind=Run.Kind.PSEUDOLABEL,
            state__in=Run.ACTIVE_STATES,
        )
    )
    # One query in the usual case: the active version sorts first when it qualifies.
    serving = (
        ModelVersion.objects.filter(Q(promoted_at__isnull=False) | Q(is_active=True))
        .filter(project=project)
        .annotate(has_predictions=has_predictions, labeling=labeling)
        .filter(has_predictions=True, labeling=False)
        .order_by("-is_active", "-number")
        .first()
    )
    return serving or ModelVersion.objects.active_for(project)
