"""Streaming read of final labels: one SQL pass (keyset by id), the winning stored rule match
joined per row (a subquery on RuleMatch; no regex runs here).

Each batch is one query: Interaction LEFT JOIN Label LEFT JOIN auth_user LEFT JOIN the active
model version's Prediction (a FilteredRelation, so still one row per interaction). Batches are
keyset-paginated by id (``id > last ORDER BY id LIMIT n``), which keeps memory flat, needs no
server-side cursor (so it also works inside a StreamingHttpResponse, outside the view's
transaction) and gives a stable order: same data, same row sequence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db.models import FilteredRelation, Q

from annotations.final_label_order import (
    SOURCES,
    FinalLabelRow,
    SourceRow,
    resolve_final_label,
)
from annotations.models import HUMAN_SOURCES, Interaction, Label, ModelVersion, Project
from annotations.selectors.rules import with_winning_rule
from annotations.selectors.versions import get_serving_model_version

BATCH_SIZE = 2000

_COLUMNS = (
    "id",
    "drug_a",
    "drug_b",
    "description",
    "label__label_class",
    "label__status",
    "label__source",
    "label__author__username",
    "label__updated_at",
    "label__note",
    "source_file",
    "source_line",
    "import_job_id",
    "rule_id",
    "rule_class",
)
_N_SOURCE = len(_COLUMNS)
_PREDICTION_COLUMNS = (
    "active_prediction__predicted_class",
    "active_prediction__confidence",
    "active_prediction__probabilities",
)


@dataclass(frozen=True)
class FinalLabelFilters:
    """Export filters. min_confidence applies to model-sourced rows only (the other sources are
    human or rule decisions, they carry no confidence)."""

    min_confidence: float | None = None
    sources: frozenset[str] | None = None
    reviewed_only: bool = False
    classes: frozenset[str] | None = None
    # Auto-accept (audits): (alpha, ((class, threshold), ...)); model rows below their class's
    # threshold, or of a class with none, are dropped. None: off.
    auto_accepted: tuple[float, tuple[tuple[str, float], ...]] | None = None

    def accepts(self, row: FinalLabelRow) -> bool:
        if self.sources is not None and row.source not in self.sources:
            return False
        if self.classes is not None and row.final_label not in self.classes:
            return False
        if self.reviewed_only and row.source != "review":
            return False
        if self.auto_accepted is not None and row.source == "model":
            threshold = dict(self.auto_accepted[1]).get(row.final_label)
            if threshold is None or row.confidence is None or row.confidence < threshold:
                return False
        return not (
            self.min_confidence is not None
            and row.source == "model"
            and (row.confidence is None or row.confidence < self.min_confidence)
        )

    def as_dict(self) -> dict:
        """A JSON-ready, order-stable description (used in the dataset card)."""
        return {
            "min_confidence": self.min_confidence,
            "sources": sorted(self.sources) if self.sources is not None else None,
            "reviewed_only": self.reviewed_only,
            "classes": sorted(self.classes) if self.classes is not None else None,
            "auto_accepted": None
            if self.auto_accepted is None
            else {"alpha": self.auto_accepted[0], "thresholds": dict(self.auto_accepted[1])},
        }


@dataclass
class FinalLabelStats:
    """Counts gathered while streaming (fed into the dataset card)."""

    rows: int = 0
    scanned: int = 0
    unlabeled: int = 0
    filtered_out: int = 0
    flagged_unclear: int = 0
    by_source: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))
    by_class: dict[str, int] = field(default_factory=dict)

    def add(self, row: FinalLabelRow) -> None:
        self.rows += 1
        self.by_source[row.source] += 1
        self.by_class[row.final_label] = self.by_class.get(row.final_label, 0) + 1
        self.flagged_unclear += row.flagged_unclear


def _base_queryset(project: Project, model_version: ModelVersion | None, filters):
    qs = Interaction.objects.filter(project=project)
    if filters.reviewed_only or (filters.sources is not None and filters.sources <= {"review"}):
        qs = qs.filter(label__source__in=HUMAN_SOURCES, label__status=Label.Status.LABELED)
    qs = with_winning_rule(qs, project=project)
    if model_version is None:
        return qs.values_list(*_COLUMNS)
    return qs.annotate(
        active_prediction=FilteredRelation(
            "predictions", condition=Q(predictions__model_version=model_version)
        )
    ).values_list(*_COLUMNS, *_PREDICTION_COLUMNS)


def iter_final_labels(
    *,
    project: Project,
    filters: FinalLabelFilters | None = None,
    model_version: ModelVersion | None = None,
    stats: FinalLabelStats | None = None,
    batch_size: int = BATCH_SIZE,
) -> Iterator[FinalLabelRow]:
    """Yield the project's final-labeled rows in id order, filtered. Read-only.

    model_version defaults to the project's active version; rules come from the stored matches.
    `stats`, when given, is updated as rows stream (so it is complete once the iterator ends).
    """
    filters = filters or FinalLabelFilters()
    if model_version is None:
        model_version = get_serving_model_version(project=project)
    stats = stats if stats is not None else FinalLabelStats()
    number = model_version.number if model_version else None
    queryset = _base_queryset(project, model_version, filters)
    last_id = 0
    while True:
        batch = list(queryset.filter(id__gt=last_id).order_by("id")[:batch_size])
        if not batch:
            return
        last_id = batch[-1][0]
        for values in batch:
            prediction = values[_N_SOURCE:] if len(values) > _N_SOURCE else (None, None, None)
            source_row = SourceRow(*values[:_N_SOURCE], *prediction, number)
            stats.scanned += 1
            row = resolve_final_label(source_row)
            if row is None:
                stats.unlabeled += 1
            elif filters.accepts(row):
                stats.add(row)
                yield row
            else:
                stats.filtered_out += 1
