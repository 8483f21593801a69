"""Agreement between reviewers: Cohen's kappa per pair, Krippendorff's alpha overall.

The numbers come from maintained code, scikit-learn's `cohen_kappa_score` and the `krippendorff`
package (nominal level); this module only gathers the answers and adds what those functions do
not: 95 % bootstrap intervals (items resampled with replacement, a fixed seed, so a page shows
the same interval twice) and plain-words warnings when the number should not be trusted (too
few items; one class so dominant that kappa swings on one answer, the "prevalence paradox";
an undefined value when nobody disagreed about anything but everyone used one class).

The answers: each answered blind row (second opinion or audit) pairs the label it checked (a
human one, with its reviewer) with the blind answer. "Unclear" answers are left out of the
coefficients (they are not a class) and counted. Read-only.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from django.core.cache import cache
from django.db.models import Count, Max, Q

from annotations.models import HUMAN_SOURCES, Adjudication, Label, Project, ReviewTask

BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 20260
MIN_ITEMS = 30
DOMINANT_CLASS_SHARE = 0.9
CACHE_S = 3600

# item id -> rater name -> class
Ratings = dict[int, dict[str, str]]


@dataclass(frozen=True)
class Coefficient:
    value: float | None
    low: float | None
    high: float | None
    items: int
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "value": self.value,
            "ci95": [self.low, self.high],
            "items": self.items,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class PairAgreement:
    reviewer_a: str
    reviewer_b: str
    kappa: Coefficient
    observed: float | None  # share of items with the same class


@dataclass(frozen=True)
class ReviewerVsAdjudication:
    reviewer: str
    items: int
    agreed: int

    @property
    def share(self) -> float | None:
        return self.agreed / self.items if self.items else None


@dataclass(frozen=True)
class RevisionAgreement:
    revision: int
    alpha: Coefficient
    kappa: Coefficient


@dataclass(frozen=True)
class AgreementReport:
    classes: list[str]
    alpha: Coefficient
    pairs: list[PairAgreement]
    by_reviewer: list[ReviewerVsAdjudication]
    by_revision: list[RevisionAgreement]
    unclear_answers: int

    def as_dict(self) -> dict:
        """JSON-ready (the dataset card's `agreement` section)."""
        return {
            "krippendorff_alpha": self.alpha.as_dict(),
            "cohen_kappa_per_pair": [
                {"reviewers": [p.reviewer_a, p.reviewer_b], **p.kappa.as_dict()} for p in self.pairs
            ],
            "agreement_with_adjudication": [
                {"reviewer": r.reviewer, "items": r.items, "agreed": r.agreed}
                for r in self.by_reviewer
            ],
            "by_guideline_revision": [
                {
                    "revision": r.revision,
                    "krippendorff_alpha": r.alpha.as_dict(),
                    "cohen_kappa": r.kappa.as_dict(),
                }
                for r in self.by_revision
            ],
            "unclear_answers_left_out": self.unclear_answers,
            "method": (
                "nominal Krippendorff's alpha (krippendorff package) and Cohen's kappa "
                "(scikit-learn) over reviewer answers on the same items; 95% intervals from "
                f"{BOOTSTRAP_SAMPLES} bootstrap resamples of items"
            ),
        }


def _clean(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _warnings(answers: list[str], items: int, value: float | None) -> list[str]:
    notes = []
    if items < MIN_ITEMS:
        notes.append(
            f"only {items} item{'s' if items != 1 else ''} answered twice: the number is "
            f"unreliable below {MIN_ITEMS} (see the interval)"
        )
    if answers:
        top, count = max(((c, answers.count(c)) for c in set(answers)), key=lambda p: p[1])
        share = count / len(answers)
        if share >= DOMINANT_CLASS_SHARE:
            notes.append(
                f"{share:.0%} of the answers are {top!r}: with so skewed a class the "
                "coefficient swings on a single answer (prevalence paradox)"
            )
    if value is None and items:
        notes.append("undefined: every answer is the same class (no variation to agree on)")
    return notes


def _percentile_interval(values: list[float]) -> tuple[float | None, float | None]:
    finite = [v for v in values if not math.isnan(v)]
    if len(finite) < BOOTSTRAP_SAMPLES // 10:
        return None, None
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def _bootstrap_kappas(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Cohen's kappa of BOOTSTRAP_SAMPLES item resamples at once (confusion matrices by one
    bincount; the same formula as scikit-learn's, which the point estimate uses: calling it a
    thousand times cost 13 s for 500 items, this costs milliseconds)."""
    n = len(a)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    picks = rng.integers(0, n, (BOOTSTRAP_SAMPLES, n))
    offsets = (np.arange(BOOTSTRAP_SAMPLES) * k * k)[:, None]
    cells = (a[picks] * k + b[picks] + offsets).ravel()
    confusion = np.bincount(cells, minlength=BOOTSTRAP_SAMPLES * k * k).reshape(-1, k, k)
    observed = np.trace(confusion, axis1=1, axis2=2) / n
    expected = (confusion.sum(axis=2) * confusion.sum(axis=1)).sum(axis=1) / n**2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected < 1, (observed - expected) / (1 - expected), np.nan)


def cohen_kappa(first: list[str], second: list[str], classes: list[str]) -> Coefficient:
    """Cohen's kappa of two raters' answers on the same items, with a bootstrap interval."""
    from sklearn.metrics import cohen_kappa_score

    items = len(first)
    if items == 0:
        return Coefficient(None, None, None, 0, ["no item answered by both"])
    value = None
    if len(set(first) | set(second)) >= 2:
        value = _clean(float(cohen_kappa_score(first, second, labels=classes)))
    code = {name: index for index, name in enumerate(classes)}
    a = np.array([code[x] for x in first])
    b = np.array([code[x] for x in second])
    low, high = _percentile_interval(list(_bootstrap_kappas(a, b, len(classes))))
    return Coefficient(value, low, high, items, _warnings(first + second, items, value))


def krippendorff_alpha(ratings: Ratings, classes: list[str]) -> Coefficient:
    """Nominal Krippendorff's alpha over every rater and item (missing answers allowed)."""
    import krippendorff

    items = [item for item, answers in sorted(ratings.items()) if len(answers) >= 2]
    raters = sorted({rater for item in items for rater in ratings[item]})
    if not items:
        return Coefficient(None, None, None, 0, ["no item answered by two reviewers"])
    code = {name: index for index, name in enumerate(classes)}
    matrix = np.full((len(raters), len(items)), np.nan)
    for column, item in enumerate(items):
        for rater, answer in ratings[item].items():
            matrix[raters.index(rater), column] = code[answer]
    answers = [ratings[item][r] for item in items for r in ratings[item]]

    def alpha(data: np.ndarray) -> float:
        values = data[~np.isnan(data)]
        if len(set(values.tolist())) < 2:
            return math.nan
        return float(
            krippendorff.alpha(
                reliability_data=data,
                level_of_measurement="nominal",
                value_domain=list(range(len(classes))),
            )
        )

    value = _clean(alpha(matrix))
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    samples = [
        alpha(matrix[:, rng.integers(0, len(items), len(items))]) for _ in range(BOOTSTRAP_SAMPLES)
    ]
    low, high = _percentile_interval(samples)
    return Coefficient(value, low, high, len(items), _warnings(answers, len(items), value))


@dataclass(frozen=True)
class _Answer:
    item: int
    first_rater: str
    first: str
    second_rater: str
    second: str
    revision: int


def _answered_pairs(project: Project) -> tuple[list[_Answer], int]:
    rows = (
        ReviewTask.objects.filter(
            interaction__project=project,
            answered_at__isnull=False,
            first_reviewer__isnull=False,
            first_source__in=HUMAN_SOURCES,
        )
        .select_related("first_reviewer", "answered_by")
        .order_by("id")
    )
    pairs, unclear = [], 0
    for row in rows:
        labeled = Label.Status.LABELED
        if row.first_status != labeled or row.answer_status != labeled or not row.answered_by:
            unclear += 1
            continue
        pairs.append(
            _Answer(
                item=row.interaction_id,
                first_rater=row.first_reviewer.get_username(),
                first=row.first_class,
                second_rater=row.answered_by.get_username(),
                second=row.answer_class,
                revision=row.guideline_revision,
            )
        )
    return pairs, unclear


def _ratings(pairs: list[_Answer]) -> Ratings:
    ratings: Ratings = defaultdict(dict)
    for pair in pairs:
        ratings[pair.item][pair.first_rater] = pair.first
        ratings[pair.item][pair.second_rater] = pair.second
    return dict(ratings)


def _pair_table(ratings: Ratings, classes: list[str]) -> list[PairAgreement]:
    raters = sorted({rater for answers in ratings.values() for rater in answers})
    table = []
    for a, b in combinations(raters, 2):
        both = [item for item, answers in sorted(ratings.items()) if a in answers and b in answers]
        if not both:
            continue
        first = [ratings[item][a] for item in both]
        second = [ratings[item][b] for item in both]
        observed = sum(x == y for x, y in zip(first, second, strict=True)) / len(both)
        table.append(PairAgreement(a, b, cohen_kappa(first, second, classes), observed))
    return table


def _by_reviewer(project: Project, ratings: Ratings) -> list[ReviewerVsAdjudication]:
    decided = dict(
        Adjudication.objects.filter(
            interaction__project=project, decided_at__isnull=False
        ).values_list("interaction_id", "decision_class")
    )
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item, decision in decided.items():
        for rater, answer in ratings.get(item, {}).items():
            counts[rater][0] += 1
            counts[rater][1] += answer == decision
    return [ReviewerVsAdjudication(name, n, ok) for name, (n, ok) in sorted(counts.items())]


def _cache_key(project: Project) -> str:
    tasks = ReviewTask.objects.filter(interaction__project=project).aggregate(
        n=Count("pk", filter=Q(answered_at__isnull=False)), last=Max("answered_at")
    )
    decided = Adjudication.objects.filter(interaction__project=project).aggregate(
        n=Count("pk", filter=Q(decided_at__isnull=False)), last=Max("decided_at")
    )
    parts = (project.pk, project.label_classes, tasks["n"], tasks["last"], decided["n"])
    raw = ":".join(map(str, (*parts, decided["last"])))
    # Hashed: the parts hold spaces and brackets, which some cache backends refuse in keys.
    return "agreement:" + hashlib.sha256(raw.encode()).hexdigest()


def get_agreement_report(*, project: Project) -> AgreementReport:
    """Every agreement number of the project (see the module docstring). Read-only; cached
    until an answer or a decision arrives (the bootstrap is the costly part)."""
    key = _cache_key(project)
    report = cache.get(key)
    if report is None:
        report = _compute_report(project)
        cache.set(key, report, CACHE_S)
    return report


def _compute_report(project: Project) -> AgreementReport:
    classes = list(project.label_classes)
    pairs, unclear = _answered_pairs(project)
    pairs = [p for p in pairs if p.first in classes and p.second in classes]
    ratings = _ratings(pairs)
    revisions = []
    for revision in sorted({p.revision for p in pairs}):
        subset = [p for p in pairs if p.revision == revision]
        revisions.append(
            RevisionAgreement(
                revision=revision,
                alpha=krippendorff_alpha(_ratings(subset), classes),
                kappa=cohen_kappa([p.first for p in subset], [p.second for p in subset], classes),
            )
        )
    return AgreementReport(
        classes=classes,
        alpha=krippendorff_alpha(ratings, classes),
        pairs=_pair_table(ratings, classes),
        by_reviewer=_by_reviewer(project, ratings),
        by_revision=revisions,
        unclear_answers=unclear,
    )
