"""When a review earns a blind second opinion (the project's share and confidence floor).

Called by services.labels.record_review inside its transaction, after a plain review (source
review, status labeled). The share is a deterministic draw per interaction (sha256 of its id):
the same item is always in or out of the sample, so re-saving a label cannot re-roll it, and a
project at 10 % gets 10 % of its items whatever the order of work. Below the confidence floor
every reviewed item gets one. The hand-out (queue) and the answer live in services/blind.py.
"""

from __future__ import annotations

import hashlib

from django.db import IntegrityError, transaction

from annotations.exceptions import DomainError
from annotations.models import Interaction, Prediction, Project, ReviewTask


def in_second_opinion_sample(interaction_id: int, rate: float) -> bool:
    """Whether the interaction falls in a `rate` share of items (stable per id). Pure."""
    if rate <= 0:
        return False
    if rate >= 1:
        return True
    digest = hashlib.sha256(f"second-opinion:{interaction_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def second_opinion_reason(
    *, interaction: Interaction, prediction: Prediction | None
) -> ReviewTask.Reason | None:
    """Why this reviewed item needs a second opinion (None: it does not). Read-only."""
    project = interaction.project
    floor = project.second_opinion_below_confidence
    if floor is not None and prediction is not None and prediction.confidence < floor:
        return ReviewTask.Reason.LOW_CONFIDENCE
    if in_second_opinion_sample(interaction.pk, project.second_opinion_rate):
        return ReviewTask.Reason.SAMPLE
    return None


def request_second_opinion_if_due(
    *, interaction: Interaction, prediction: Prediction | None
) -> ReviewTask | None:
    """Open a blind second-opinion row on a freshly reviewed item when the project asks for one.

    At most one per interaction ever (an answered one is not reopened by a later edit). Safe to
    run twice: the one-open-row constraint keeps a concurrent second insert out.
    """
    if ReviewTask.objects.filter(
        interaction=interaction, kind=ReviewTask.Kind.SECOND_OPINION
    ).exists():
        return None
    reason = second_opinion_reason(interaction=interaction, prediction=prediction)
    if reason is None:
        return None
    try:
        with transaction.atomic():
            return ReviewTask.objects.create(
                interaction=interaction,
                kind=ReviewTask.Kind.SECOND_OPINION,
                reason=reason,
                guideline_revision=interaction.project.guideline_revision,
            )
    except IntegrityError:
        return None


def update_second_opinion_settings(
    *, project: Project, percent: float, below_confidence: float | None
) -> Project:
    """Set the project's share (percent, 0-100) and confidence floor (None: off). Safe twice."""
    floor_ok = below_confidence is None or 0 <= below_confidence <= 1
    if not 0 <= percent <= 100 or not floor_ok:
        raise DomainError("The share is 0-100 % and the confidence floor 0-1 (or blank).")
    Project.objects.filter(pk=project.pk).update(
        second_opinion_rate=percent / 100, second_opinion_below_confidence=below_confidence
    )
    project.refresh_from_db()
    return project
