"""Final label resolution: which class an interaction ends up with, and where it came from.

The one documented order (first that applies wins):

1. **review**: the current Label has source review, audit or adjudication (a person decided it)
   and status labeled; `label_source` keeps which of the three.
2. **seed**: the current Label came from a seed or an import (source seed/import), status labeled.
3. **rule**: the highest-priority active rule that matches (priority desc, then lowest id).
4. **model**: the active model version's prediction.

A review flagged *unclear* is not a label: the row falls through to rule, then model, and is
marked ``flagged_unclear=True`` with the reviewer and time of the flag. (The Label row is one
per interaction, so a seed label that a reviewer later flagged unclear is not resurrected: the
reviewer explicitly doubted it; its history stays in LabelEvent.) An interaction that none of
the four sources labels has no final label and is left out of exports (counted in the card).

Rules are matched in Python with the same engine that validated them (annotations/rule_matching;
matching in SQL would give PostgreSQL's POSIX regex semantics, not Python's), once per rule and
interaction, and stored (annotations/rule_matches.py); the read joins the winning stored match.

Pure domain code: the selectors (reads) and the services (writes) both import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from annotations.models import HUMAN_SOURCES, Label

SOURCES = ("review", "seed", "rule", "model")
_SEED_SOURCES = frozenset({Label.Source.SEED, Label.Source.IMPORT})


@dataclass(slots=True)
class FinalLabelRow:
    """One interaction with its resolved final label and provenance (one export row)."""

    interaction_id: int
    drug_a: str
    drug_b: str
    description: str
    final_label: str
    source: str
    confidence: float | None
    model_version: int | None
    rule_id: int | None
    reviewer: str | None
    reviewed_at: datetime | None
    flagged_unclear: bool
    probabilities: list[float] | None
    # Provenance: where the row came from and how its label was made.
    label_source: str = ""  # the Label's own source: seed, import, review... ("" when none)
    note: str = ""  # the reviewer's note (why it was flagged unclear, for example)
    source_file: str = ""
    source_line: int | None = None
    import_id: int | None = None


@dataclass(slots=True)
class SourceRow:
    """The raw facts about one interaction, as one SQL pass returns them."""

    interaction_id: int
    drug_a: str
    drug_b: str
    description: str
    label_class: str | None
    label_status: str | None
    label_source: str | None
    label_author: str | None
    label_updated_at: datetime | None
    label_note: str | None
    source_file: str
    source_line: int | None
    import_id: int | None
    rule_id: int | None  # the winning stored rule match (None: no active rule matches)
    rule_class: str | None
    predicted_class: str | None
    confidence: float | None
    probabilities: list[float] | None
    model_version: int | None


def resolve_final_label(row: SourceRow) -> FinalLabelRow | None:
    """Apply the documented order to one row; None when no source labels it. Pure."""
    flagged = row.label_status == Label.Status.UNCLEAR
    # Audit answers and adjudications are human reviews too (their own label_source says which).
    is_review = row.label_source in HUMAN_SOURCES
    reviewer = row.label_author if is_review else None
    reviewed_at = row.label_updated_at if is_review else None
    final, source, rule_id = None, None, None
    if row.label_status == Label.Status.LABELED and row.label_class:
        final = row.label_class
        source = "review" if is_review else "seed" if row.label_source in _SEED_SOURCES else None
    if source is None:
        if row.rule_id is not None:
            final, source, rule_id = row.rule_class, "rule", row.rule_id
        elif row.predicted_class:
            final, source = row.predicted_class, "model"
        else:
            return None
    has_prediction = row.predicted_class is not None
    return FinalLabelRow(
        interaction_id=row.interaction_id,
        drug_a=row.drug_a,
        drug_b=row.drug_b,
        description=row.description,
        final_label=final,
        source=source,
        confidence=row.confidence if has_prediction else None,
        model_version=row.model_version if has_prediction else None,
        rule_id=rule_id,
        reviewer=reviewer,
        reviewed_at=reviewed_at,
        flagged_unclear=flagged,
        probabilities=row.probabilities if has_prediction else None,
        label_source=row.label_source or "",
        note=row.label_note or "",
        source_file=row.source_file,
        source_line=row.source_line,
        import_id=row.import_id,
    )
