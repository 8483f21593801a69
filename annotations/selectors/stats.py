"""Dashboard numbers. Every figure is one aggregate query (COUNT/GROUP BY in the database);
nothing loops over interactions or predictions in Python."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Exists, F, FloatField, IntegerField, OuterRef, Q, QuerySet
from django.db.models.functions import Cast, Floor, Least, TruncDate
from django.utils import timezone

from annotations import audit_stats
from annotations.models import (
    HUMAN_SOURCES,
    Interaction,
    Label,
    LabelEvent,
    ModelVersion,
    Prediction,
    Project,
    Run,
)
from annotations.selectors.versions import get_serving_model_version

HISTOGRAM_BINS = 10
# Numeric metrics charted over model versions (others stay in the table).
CHARTED_METRICS = ("accuracy", "macro_f1", "ece")
# The chart legend's words for them (not field names).
CHARTED_METRIC_NAMES = {
    "accuracy": "accuracy (out of fold)",
    "macro_f1": "macro-F1 (out of fold)",
    "ece": "calibration error of the confidence (out of fold)",
}


@dataclass(frozen=True)
class DashboardCounts:
    interactions: int
    seed_labels: int
    reviewed: int
    flagged: int
    pseudo_labeled: int
    low_confidence_unreviewed: int
    low_confidence_threshold: float


def get_dashboard_counts(*, project: Project) -> DashboardCounts:
    """Headline counts; 'pseudo-labeled' = interactions with a prediction of the active version."""
    labels = Label.objects.filter(interaction__project=project).aggregate(
        seed=Count("id", filter=Q(source__in=[Label.Source.SEED, Label.Source.IMPORT])),
        reviewed=Count("id", filter=Q(source__in=HUMAN_SOURCES)),
        flagged=Count("id", filter=Q(status=Label.Status.UNCLEAR)),
    )
    threshold = settings.DDI_LOW_CONFIDENCE
    active = get_serving_model_version(project=project)
    pseudo = low = 0
    if active is not None:
        unlabeled = ~Exists(Label.objects.filter(interaction_id=OuterRef("interaction_id")))
        predictions = Prediction.objects.filter(model_version=active).aggregate(
            total=Count("id"),
            low=Count("id", filter=Q(confidence__lt=threshold) & Q(unlabeled)),
        )
        pseudo, low = predictions["total"], predictions["low"]
    return DashboardCounts(
        interactions=Interaction.objects.filter(project=project).count(),
        seed_labels=labels["seed"],
        reviewed=labels["reviewed"],
        flagged=labels["flagged"],
        pseudo_labeled=pseudo,
        low_confidence_unreviewed=low,
        low_confidence_threshold=threshold,
    )


def get_class_distribution(*, project: Project) -> dict[str, dict[str, int]]:
    """Per class: human labels (seed + review) and active-model predictions, in class order."""
    classes = list(project.label_classes)
    human = dict(
        Label.objects.filter(interaction__project=project, status=Label.Status.LABELED)
        .values_list("label_class")
        .annotate(n=Count("id"))
        .values_list("label_class", "n")
    )
    predicted: dict[str, int] = {}
    active = get_serving_model_version(project=project)
    if active is not None:
        predicted = dict(
            Prediction.objects.filter(model_version=active)
            .values_list("predicted_class")
            .annotate(n=Count("id"))
            .values_list("predicted_class", "n")
        )
    return {
        "classes": classes,
        "labels": [human.get(name, 0) for name in classes],
        "predictions": [predicted.get(name, 0) for name in classes],
    }


def get_confidence_histogram(*, project: Project) -> dict:
    """Counts of active-model predictions per class in HISTOGRAM_BINS equal confidence bins."""
    classes = list(project.label_classes)
    edges = [round(i / HISTOGRAM_BINS, 2) for i in range(HISTOGRAM_BINS + 1)]
    counts = {name: [0] * HISTOGRAM_BINS for name in classes}
    active = get_serving_model_version(project=project)
    if active is not None:
        # confidence 1.0 belongs to the last bin, hence LEAST(..., bins - 1).
        bin_expr = Least(
            Cast(Floor(Cast("confidence", FloatField()) * HISTOGRAM_BINS), IntegerField()),
            HISTOGRAM_BINS - 1,
        )
        rows = (
            Prediction.objects.filter(model_version=active)
            .annotate(bin=bin_expr)
            .values("predicted_class", "bin")
            .annotate(n=Count("id"))
            .order_by()
        )
        for row in rows:
            if row["predicted_class"] in counts and row["bin"] is not None:
                counts[row["predicted_class"]][max(0, int(row["bin"]))] += row["n"]
    return {"edges": edges, "classes": classes, "counts": [counts[name] for name in classes]}


def get_reviewer_throughput(*, project: Project, days: int = 14) -> dict:
    """Label actions per reviewer per day over the last `days` days (undo not counted)."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        LabelEvent.objects.filter(
            interaction__project=project, actor__isnull=False, created_at__gte=since
        )
        .exclude(action__in=[LabelEvent.Action.UNDO, LabelEvent.Action.CREATE])
        .annotate(day=TruncDate("created_at"))
        .values("actor__username", "day")
        .annotate(n=Count("id"))
        .order_by("day", "actor__username")
    )
    today = timezone.localdate()
    day_list = [(today - timedelta(days=offset)) for offset in range(days - 1, -1, -1)]
    per_user: dict[str, dict] = {}
    for row in rows:
        per_user.setdefault(row["actor__username"], {})[row["day"]] = row["n"]
    return {
        "days": [day.isoformat() for day in day_list],
        "reviewers": [
            {"name": name, "counts": [counts.get(day, 0) for day in day_list]}
            for name, counts in sorted(per_user.items())
        ],
        "total": sum(row["n"] for row in rows),
    }


def list_model_versions(*, project: Project) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(project=project).order_by("number")


def get_metrics_over_versions(*, project: Project) -> dict:
    """Numeric validation metrics per model version, for a line chart."""
    versions = list(list_model_versions(project=project).values("number", "metrics", "created_at"))
    series = {
        name: [
            v["metrics"].get(name) if isinstance(v["metrics"].get(name), (int, float)) else None
            for v in versions
        ]
        for name in CHARTED_METRICS
    }
    return {
        "versions": [f"v{v['number']}" for v in versions],
        "series": {name: values for name, values in series.items() if any(values)},
        "names": CHARTED_METRIC_NAMES,
    }


def list_active_runs(*, project: Project) -> QuerySet[Run]:
    """Queued/running runs plus those that ended in the last minute (so a bar can reach 100%)."""
    recent = timezone.now() - timedelta(minutes=1)
    return (
        Run.objects.filter(project=project)
        .filter(Q(state__in=Run.ACTIVE_STATES) | Q(finished_at__gte=recent))
        .select_related("model_version", "created_by")
        .order_by("-id")[:20]
    )


# --- online agreement and the learning curve (the loop, measured) --------------------------------

# Review actions that state a class: accepting a prediction or choosing one. Seed imports, flags
# ("unclear" is not a disagreement) and undos are not reviews of the prediction.
_AGREEMENT_ACTIONS = (LabelEvent.Action.ACCEPT, LabelEvent.Action.CHANGE, LabelEvent.Action.AUDIT)


def wilson_interval(successes: int, n: int) -> tuple[float, float] | None:
    """95 % Wilson interval of a proportion (None without observations): audit_stats.wilson,
    the one implementation the audit's rubber-stamp check uses too."""
    return audit_stats.wilson(successes, n)


@dataclass(frozen=True)
class VersionAgreement:
    """How often reviewers chose the class a model version had predicted for the item."""

    number: int
    is_active: bool
    created_at: object
    validation_macro_f1: float | None
    reviews: int  # review events whose item had a prediction of this version
    agreed: int  # ... where the reviewer's class equals the predicted class

    @property
    def rate(self) -> float | None:
        return self.agreed / self.reviews if self.reviews else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.agreed, self.reviews)


def list_review_agreement(*, project: Project) -> list[VersionAgreement]:
    """Per model version (in order): reviews of its predictions and how many agreed.

    Counted from LabelEvent, which records the active version and its predicted class at review
    time: agreement = events with new_class == predicted_class / events with a prediction
    (accept and change actions with status labeled, by reviewers; each event counts, so an item
    reviewed twice counts twice). An online estimate of precision on the items reviewers were
    shown, which the queue picks among the least confident: expect it below validation accuracy.
    One GROUP BY query plus the version list.
    """
    counts = {
        row["model_version"]: row
        for row in LabelEvent.objects.filter(
            interaction__project=project,
            source__in=HUMAN_SOURCES,
            action__in=_AGREEMENT_ACTIONS,
            new_status=Label.Status.LABELED,
            model_version__isnull=False,
        )
        .exclude(predicted_class="")
        .values("model_version")
        .annotate(reviews=Count("id"), agreed=Count("id", filter=Q(new_class=F("predicted_class"))))
        .order_by()
    }
    rows = []
    for version in list_model_versions(project=project).only(
        "pk", "number", "is_active", "created_at", "metrics"
    ):
        found = counts.get(version.pk, {})
        f1 = (version.metrics or {}).get("macro_f1")
        rows.append(
            VersionAgreement(
                number=version.number,
                is_active=version.is_active,
                created_at=version.created_at,
                validation_macro_f1=f1 if isinstance(f1, (int, float)) else None,
                reviews=found.get("reviews", 0),
                agreed=found.get("agreed", 0),
            )
        )
    return rows


def get_learning_curve(
    *, project: Project, agreement: list[VersionAgreement] | None = None
) -> dict:
    """Chart data: per version over time, validation macro-F1 and online reviewer agreement
    (with its Wilson 95% bounds and the number of reviews behind it). `agreement`: the rows of
    list_review_agreement when the caller has them already (saves the query)."""
    rows = agreement if agreement is not None else list_review_agreement(project=project)

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    return {
        "versions": [f"v{row.number}" for row in rows],
        "created": [row.created_at.isoformat() if row.created_at else None for row in rows],
        "macro_f1": [rounded(row.validation_macro_f1) for row in rows],
        "agreement": [rounded(row.rate) for row in rows],
        "agreement_low": [rounded(row.interval[0]) if row.interval else None for row in rows],
        "agreement_high": [rounded(row.interval[1]) if row.interval else None for row in rows],
        "reviews": [row.reviews for row in rows],
    }
