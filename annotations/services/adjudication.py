"""Adjudication: a curator decides between disagreeing reviewers.

A disagreeing second opinion opens an Adjudication (services/blind.py). The curator's decision
becomes the interaction's Label with source "adjudication", written through services.labels
under optimistic locking on the Label's version: two curators deciding at once, one wins and the
other gets EditConflict (API: 409, or 412 with a stale If-Match). Every earlier answer stays in
LabelEvent and on the ReviewTask rows.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotations.exceptions import AdjudicationClosed, EditConflict
from annotations.models import Adjudication, Interaction, Label, LabelEvent, ReviewTask
from annotations.services import labels


def open_adjudication(
    *, interaction: Interaction, review_task: ReviewTask | None = None, reason: str = ""
) -> Adjudication:
    """Put the interaction in the curators' adjudication queue (the open one if there is one).

    Safe to run twice: the one-open-adjudication constraint keeps a second row out.
    """
    existing = Adjudication.objects.filter(interaction=interaction, decided_at__isnull=True).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return Adjudication.objects.create(
                interaction=interaction, review_task=review_task, reason=reason
            )
    except IntegrityError:
        return Adjudication.objects.get(interaction=interaction, decided_at__isnull=True)


def decide_adjudication(
    *,
    adjudication: Adjudication,
    user: AbstractBaseUser,
    label_class: str,
    expected_version: int | None,
    note: str = "",
) -> Label:
    """Write the curator's decision as the final label (source adjudication) and close the row.

    `expected_version` is the Label version the curator saw. Raises EditConflict when the label
    changed meanwhile (another curator decided, a reviewer edited), AdjudicationClosed when the
    row was decided already, InvalidLabelClass for a class outside the project. Nothing is
    written on any error. Not idempotent by design (a replay is a conflict).
    """
    with transaction.atomic():
        label = labels.record_review(
            interaction=adjudication.interaction,
            user=user,
            label_class=label_class,
            status=Label.Status.LABELED,
            note=note,
            expected_version=expected_version,
            action=LabelEvent.Action.ADJUDICATE,
            source=Label.Source.ADJUDICATION,
        )
        closed = Adjudication.objects.filter(pk=adjudication.pk, decided_at__isnull=True).update(
            decided_by=user, decided_at=timezone.now(), decision_class=label.label_class, note=note
        )
        if closed != 1:
            # The label write above rolls back with this transaction.
            decided = Adjudication.objects.select_related("decided_by").get(pk=adjudication.pk)
            who = decided.decided_by.get_username() if decided.decided_by else "someone"
            if expected_version is not None:
                raise EditConflict(
                    f"Interaction {decided.interaction_id} was adjudicated by {who} "
                    f"({decided.decision_class!r}) meanwhile; your decision was not saved."
                )
            raise AdjudicationClosed(
                f"Interaction {decided.interaction_id} was adjudicated already by {who}."
            )
        return label
