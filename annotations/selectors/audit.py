"""Reads for audits: the estimated accuracy of the unreviewed labels, auto-accept thresholds, and
the per-reviewer rubber-stamp check. Statistics in annotations/audit_stats."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Q

from annotations import audit_stats
from annotations.models import Audit, AuditItem, Label, LabelEvent, Project
from annotations.selectors.versions import get_serving_model_version

ASSUMPTION = (
    "The guarantee assumes the rows it is applied to are exchangeable with the audited rows of "
    "the same class and confidence band (drawn from the same source, scored by the same model "
    "version); rows imported or re-scored after the audit are not covered until a new audit."
)


CLUSTER_ASSUMPTION = (
    "Rows with the same blinded sentence get the same class and confidence from the model, so "
    "an audited row stands for every such row of its stratum when its sentence pattern was "
    "taken whole; this assumes those rows also share the right class (the Consistency page "
    "lists blinded texts whose human labels disagree)."
)


@dataclass
class AuditSummary:
    audit: Audit
    answered: int
    unclear: int
    drawn: int
    estimate: audit_stats.Estimate
    per_class: dict[str, audit_stats.Estimate]
    stale: bool
    stale_reason: str
    version_number: int | None
    created_at: datetime
    cluster_items: int = 0  # items that stand for their whole sentence pattern
    cluster_rows: int = 0  # rows those items stand for
    cluster_assumption: str = CLUSTER_ASSUMPTION

    def as_dict(self) -> dict:
        return {
            "audit_id": self.audit.pk,
            "source": self.audit.source,
            "drawn": self.drawn,
            "answered": self.answered,
            "unclear": self.unclear,
            "population": self.audit.population,
            "model_version": self.version_number,
            "date": self.created_at.isoformat(),
            "stale": self.stale,
            "stale_reason": self.stale_reason,
            "accuracy": self.estimate.as_dict(),
            "per_class": {k: v.as_dict() for k, v in self.per_class.items()},
            "pattern_items": self.cluster_items,
            "pattern_rows": self.cluster_rows,
            "pattern_assumption": self.cluster_assumption if self.cluster_items else "",
        }


def list_audits(*, project: Project) -> list[Audit]:
    return list(
        Audit.objects.filter(project=project)
        .select_related("model_version", "started_by")
        .annotate(
            drawn=Count("items"),
            answered=Count("items", filter=Q(items__task__answered_at__isnull=False)),
        )
    )


def get_latest_audit(*, project: Project, source: str = Audit.Source.MODEL) -> Audit | None:
    return (
        Audit.objects.filter(project=project, source=source).select_related("model_version").first()
    )


# An item is answered when its blind review row is; it is right when the answer is the class
# the model (or rule) gave at draw time. An "unclear" answer is answered but neither.
_ANSWERED = Q(task__answered_at__isnull=False)
_UNCLEAR = _ANSWERED & Q(task__answer_status=Label.Status.UNCLEAR)
_SCORED = _ANSWERED & Q(task__answer_status=Label.Status.LABELED)


def _answers_by_stratum(audit: Audit) -> dict[str, tuple[int, list[bool], list]]:
    """stratum -> (rows drawn at random, their scored answers as right/wrong, certainty
    clusters as (rows, their scored answers)). Unanswered and "unclear" items are not scored."""
    answers: dict[str, list[bool]] = defaultdict(list)
    clusters: dict[str, dict[str, tuple[int, list[bool]]]] = defaultdict(dict)
    rows = AuditItem.objects.filter(audit=audit).values_list(
        "stratum",
        "shown_class",
        "task__answer_class",
        "cluster_rows",
        "interaction__pattern_hash",
        "task__answered_at",
        "task__answer_status",
    )
    for stratum, shown, answer, cluster_rows, pattern, answered_at, status in rows:
        scored = answered_at is not None and status == Label.Status.LABELED
        if cluster_rows is not None:
            got = clusters[stratum].setdefault(pattern, (cluster_rows, []))[1]
        else:
            got = answers[stratum]
        if scored:
            got.append(shown == answer)
    return {
        key: (
            int(info["size"]) - int(info.get("cluster_rows", 0)),
            answers[key],
            [clusters[key][p] for p in sorted(clusters[key])],
        )
        for key, info in audit.strata.items()
    }


def _results(answers: dict[str, tuple], only_class: str | None = None):
    return [
        result
        for key, parts in sorted(answers.items())
        if only_class is None or audit_stats.parse_stratum(key)[0] == only_class
        for result in audit_stats.stratum_results(key, *parts)
    ]


def _staleness(audit: Audit, project: Project) -> tuple[bool, str]:
    if audit.source != Audit.Source.MODEL:
        return False, ""
    serving = get_serving_model_version(project=project)
    if serving is None or audit.model_version_id is None:
        return True, "no model version is active now"
    if serving.pk != audit.model_version_id:
        return True, (
            f"drawn from version {audit.model_version.number}; version {serving.number} is "
            "active now, so this estimate no longer describes the served labels"
        )
    return False, ""


def get_audit_summary(
    *, project: Project, source: str = Audit.Source.MODEL, audit: Audit | None = None
) -> AuditSummary | None:
    """The estimate from the project's latest audit of `source` (or the given one)."""
    audit = audit or get_latest_audit(project=project, source=source)
    if audit is None:
        return None
    answers = _answers_by_stratum(audit)
    counts = AuditItem.objects.filter(audit=audit).aggregate(
        drawn=Count("id"),
        answered=Count("id", filter=_ANSWERED),
        unclear=Count("id", filter=_UNCLEAR),
    )
    classes = sorted({audit_stats.parse_stratum(k)[0] for k in audit.strata})
    stale, reason = _staleness(audit, project)
    return AuditSummary(
        audit=audit,
        answered=counts["answered"],
        unclear=counts["unclear"],
        drawn=counts["drawn"],
        estimate=audit_stats.estimate_accuracy(_results(answers)),
        per_class={
            c: audit_stats.estimate_accuracy(_results(answers, only_class=c)) for c in classes
        },
        stale=stale,
        stale_reason=reason,
        version_number=audit.model_version.number if audit.model_version else None,
        created_at=audit.created_at,
        cluster_items=sum(int(info.get("clusters", 0)) for info in audit.strata.values()),
        cluster_rows=sum(int(info.get("cluster_rows", 0)) for info in audit.strata.values()),
    )


@dataclass
class AutoAccept:
    alpha: float
    audit_id: int | None
    thresholds: list[audit_stats.ClassThreshold]
    rows_accepted: int
    rows: int
    reason: str = ""  # why nothing is accepted, when nothing is
    assumption: str = ASSUMPTION

    @property
    def share(self) -> float:
        return self.rows_accepted / self.rows if self.rows else 0.0

    def threshold_map(self) -> dict[str, float]:
        return {t.predicted_class: t.threshold for t in self.thresholds if t.threshold is not None}

    def as_dict(self) -> dict:
        return {
            "alpha": self.alpha,
            "audit_id": self.audit_id,
            "thresholds": {t.predicted_class: t.threshold for t in self.thresholds},
            "notes": {t.predicted_class: t.note for t in self.thresholds if t.note},
            "rows_accepted": self.rows_accepted,
            "rows": self.rows,
            "share_accepted": round(self.share, 6),
            "reason": self.reason,
            "assumption": self.assumption,
        }


def get_auto_accept(*, project: Project) -> AutoAccept | None:
    """Per-class thresholds at the project's alpha, from its latest model audit's answers only."""
    alpha = project.auto_accept_alpha
    if alpha is None:
        return None
    audit = get_latest_audit(project=project, source=Audit.Source.MODEL)
    if audit is None:
        return AutoAccept(alpha, None, [], 0, 0, "no audit yet: start one on the Audit page")
    stale, reason = _staleness(audit, project)
    if stale:
        return AutoAccept(alpha, audit.pk, [], 0, audit.population, f"the audit is stale: {reason}")
    table = _answers_by_stratum(audit)
    classes = sorted({audit_stats.parse_stratum(k)[0] for k in audit.strata})
    thresholds = audit_stats.auto_accept_thresholds(table, classes, alpha)
    accepted = sum(t.rows_accepted for t in thresholds)
    why = "" if accepted else "no confidence band could be certified at this error rate yet"
    return AutoAccept(alpha, audit.pk, thresholds, accepted, audit.population, why)


@dataclass
class ReviewerCheck:
    username: str
    blind: audit_stats.Agreement
    assisted: audit_stats.Agreement
    flagged: bool
    notes: list[str] = field(default_factory=list)


def get_rubber_stamp_checks(*, project: Project) -> list[ReviewerCheck]:
    """Per reviewer: agreement with the model on blind audit items vs on assisted queue items."""
    blind = defaultdict(lambda: [0, 0])
    rows = AuditItem.objects.filter(
        _SCORED, audit__project=project, audit__source=Audit.Source.MODEL
    ).values_list("task__answered_by__username", "shown_class", "task__answer_class")
    for name, shown, answer in rows:
        blind[name][0] += int(shown == answer)
        blind[name][1] += 1
    assisted = defaultdict(lambda: [0, 0])
    events = (
        LabelEvent.objects.filter(
            interaction__project=project,
            source=Label.Source.REVIEW,
            actor__isnull=False,
            new_status=Label.Status.LABELED,
        )
        .exclude(predicted_class="")
        .values_list("actor__username", "new_class", "predicted_class")
    )
    for name, new, predicted in events:
        assisted[name][0] += int(new == predicted)
        assisted[name][1] += 1
    out = []
    for name in sorted(set(blind) | set(assisted)):
        b = audit_stats.agreement(*blind[name])
        a = audit_stats.agreement(*assisted[name])
        notes = []
        if b.total < audit_stats.RUBBER_STAMP_MIN_BLIND:
            notes.append(
                f"{b.total} blind audit answers: at least {audit_stats.RUBBER_STAMP_MIN_BLIND} "
                "are needed to compare"
            )
        out.append(ReviewerCheck(name, b, a, audit_stats.rubber_stamp(b, a), notes))
    return out
