"""What a queue page is asked for and made of (filters, cursor, items), and the filter and
exclusion querysets."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from annotations.models import (
    Interaction,
    Label,
    ModelVersion,
    Project,
    ReviewClaim,
    ReviewSkip,
    ReviewTask,
)


@dataclass(frozen=True)
class QueueFilters:
    """What the reviewer narrowed the queue to (all optional; unreviewed-only by default)."""

    predicted_class: str = ""
    min_confidence: float | None = None
    max_confidence: float | None = None
    unreviewed_only: bool = True
    disagrees_with_rule: bool = False
    drug: str = ""
    text: str = ""
    source: str = ""
    # One of selectors/consistency.KINDS: only the items that check lists.
    consistency: str = ""


@dataclass(frozen=True)
class QueueCursor:
    """Keyset position: the sort key of the last row shown (confidence/margin None: no model)."""

    confidence: float | None
    margin: float | None
    interaction_id: int

    def encode(self) -> str:
        if self.confidence is None:
            return f"id:{self.interaction_id}"
        return f"{self.confidence!r}:{self.margin!r}:{self.interaction_id}"

    @classmethod
    def decode(cls, raw: str | None) -> QueueCursor | None:
        """Parse a cursor from a query string; a malformed one means 'from the start'."""
        if not raw:
            return None
        parts = raw.split(":")
        try:
            if len(parts) == 2 and parts[0] == "id":
                cursor = cls(None, None, int(parts[1]))
            elif len(parts) == 3:
                cursor = cls(float(parts[0]), float(parts[1]), int(parts[2]))
            else:
                return None
        except ValueError:
            return None
        # Out of range for the database (an id past 64 bits, inf/nan) is malformed too.
        if not 0 <= cursor.interaction_id < 2**63 or not all(
            math.isfinite(v) for v in (cursor.confidence, cursor.margin) if v is not None
        ):
            return None
        return cursor


@dataclass(frozen=True)
class QueueItem:
    interaction: Interaction
    predicted_class: str = ""
    confidence: float | None = None
    margin: float | None = None
    probabilities: list[float] = field(default_factory=list)

    @property
    def cursor(self) -> QueueCursor:
        return QueueCursor(self.confidence, self.margin, self.interaction.pk)


@dataclass(frozen=True)
class QueuePage:
    items: list[QueueItem]
    next_cursor: str | None
    model_version: ModelVersion | None


def _interaction_filters(
    *, project: Project, user: AbstractBaseUser, filters: QueueFilters, prefix: str
) -> Q:
    """Conditions on the interaction side, written relative to `prefix` ("" or "interaction__")."""
    p = prefix
    q = Q(**{f"{p}project": project})
    if filters.drug:
        drug = filters.drug.strip()
        q &= Q(**{f"{p}drug_a__iexact": drug}) | Q(**{f"{p}drug_b__iexact": drug})
    if filters.text:
        q &= Q(**{f"{p}description__icontains": filters.text.strip()})
    if filters.source:
        q &= Q(**{f"{p}source_file": filters.source})
    if filters.consistency:
        from annotations.selectors.consistency import get_consistency_report

        ids = get_consistency_report(project=project).interaction_ids(filters.consistency)
        q &= Q(**{f"{p}pk__in": sorted(ids)})
    return q


def _exclusions(qs: QuerySet, *, user: AbstractBaseUser, filters: QueueFilters, id_field: str):
    """Drop reviewed (if asked), skipped-by-me and claimed-by-someone-else rows (NOT EXISTS)."""
    ref = OuterRef(id_field)
    if filters.unreviewed_only:
        qs = qs.exclude(Exists(Label.objects.filter(interaction_id=ref)))
    qs = qs.exclude(Exists(ReviewSkip.objects.filter(interaction_id=ref, user=user)))
    # Items the user holds blind are handed out by the blind hand-out only: listing them here
    # would show the model's answer (and a model filter would reveal it by the row's presence).
    qs = qs.exclude(
        Exists(
            ReviewTask.objects.filter(interaction_id=ref, assignee=user, answered_at__isnull=True)
        )
    )
    return qs.exclude(
        Exists(
            ReviewClaim.objects.filter(interaction_id=ref, expires_at__gte=timezone.now()).exclude(
                user=user
            )
        )
    )


def _rule_disagreement_ids(project: Project, model_version: ModelVersion | None) -> QuerySet:
    # Imported here: the rules selector is another engineer's module and optional for the queue.
    from annotations.selectors.rules import interactions_disagreeing_with_rules

    return interactions_disagreeing_with_rules(project=project, model_version=model_version).values(
        "id"
    )
