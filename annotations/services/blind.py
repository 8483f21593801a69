"""Blind review writes: creating ReviewTask rows, handing them out, and answering them.

Shared by second opinions (issue 15) and blind audits (issue 14). The rules:
- the queue hands open rows out before ordinary items, never to an earlier answerer of the
  item (selectors/blind.py) and never to the same person twice (a unique constraint on
  (interaction, answered_by));
- a hand-out is a conditional UPDATE (free, mine, or an expired lease), so two reviewers asking
  at once never hold the same row;
- a second opinion is stored on its row and never overwrites the first reviewer's Label; when it
  disagrees, the item goes to the curators' adjudication queue;
- an audit answer becomes the interaction's Label with source "audit" through services.labels
  (a LabelEvent records the model's class at that moment) and counts as a review.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from annotations.exceptions import NotYourBlindReview
from annotations.models import (
    HUMAN_SOURCES,
    Interaction,
    Label,
    LabelEvent,
    Project,
    ReviewClaim,
    ReviewSkip,
    ReviewTask,
)
from annotations.selectors.blind import earlier_answerer_ids, list_offerable_tasks
from annotations.selectors.queue import QueueFilters
from annotations.services import labels
from annotations.services.adjudication import open_adjudication

BLIND_CLAIM_TTL = timedelta(minutes=30)
# How many offerable rows one hand-out tries before giving up for this call.
HANDOUT_TRIES = 20


def create_tasks(
    *,
    interaction_ids: Iterable[int],
    kind: str,
    reason: str = ReviewTask.Reason.REQUESTED,
    created_by: AbstractBaseUser | None = None,
    assignee: AbstractBaseUser | None = None,
) -> list[ReviewTask]:
    """Open one blind row of `kind` on each interaction (the audit's sample, a curator's request).

    Returns the open rows of that kind on those interactions, the ones that already existed
    included, in interaction order. Safe to run twice (the one-open-row-per-kind constraint makes
    the second insert a no-op). An `assignee` who answered an interaction before is not
    assigned that one (its row stays open for someone else).
    """
    ids = sorted(set(interaction_ids))
    interactions = Interaction.objects.filter(pk__in=ids).select_related("project")
    rows = []
    for interaction in interactions:
        holder = assignee
        if holder is not None and holder.pk in earlier_answerer_ids(interaction):
            holder = None
        rows.append(
            ReviewTask(
                interaction=interaction,
                kind=kind,
                reason=reason,
                created_by=created_by,
                assignee=holder,
                guideline_revision=interaction.project.guideline_revision,
            )
        )
    ReviewTask.objects.bulk_create(rows, ignore_conflicts=True)
    return list(
        ReviewTask.objects.filter(interaction_id__in=ids, kind=kind, answered_at__isnull=True)
        .select_related("interaction")
        .order_by("interaction_id")
    )


def _take(task: ReviewTask, user: AbstractBaseUser) -> bool:
    """Hold the row for `user`: conditional UPDATE, so only one of two callers wins."""
    now = timezone.now()
    if task.assignee_id == user.pk and task.claim_expires_at is None:
        return True  # assigned up front (an audit's reviewer): nothing to renew
    free = Q(assignee__isnull=True) | Q(assignee=user) | Q(claim_expires_at__lt=now)
    return bool(
        ReviewTask.objects.filter(free, pk=task.pk, answered_at__isnull=True).update(
            assignee=user, claim_expires_at=now + BLIND_CLAIM_TTL
        )
    )


def claim_blind_task(
    *, project: Project, user: AbstractBaseUser, exclude_ids: frozenset[int] = frozenset()
) -> ReviewTask | None:
    """Hand the user the oldest blind row they may answer, holding it for them (None: none).

    Side effects: the row's assignee and lease, and the item's ReviewClaim (so the ordinary
    queue does not show it to someone else meanwhile). Safe to run twice (renews the same row).
    """
    skipped = ReviewSkip.objects.filter(user=user).values("interaction_id")
    offer = list_offerable_tasks(project=project, user=user).exclude(interaction_id__in=skipped)
    if exclude_ids:
        offer = offer.exclude(interaction_id__in=exclude_ids)
    for task in offer[:HANDOUT_TRIES]:
        if not _take(task, user):
            continue
        if not labels.claim_interaction(interaction_id=task.interaction_id, user=user):
            # Someone has the item open in the ordinary queue: let the row go for now.
            ReviewTask.objects.filter(pk=task.pk, assignee=user, answered_at__isnull=True).update(
                assignee=None, claim_expires_at=None
            )
            continue
        return ReviewTask.objects.select_related("interaction").get(pk=task.pk)
    return None


def claim_next_item(
    *,
    project: Project,
    user: AbstractBaseUser,
    filters: QueueFilters | None = None,
    exclude_ids: frozenset[int] = frozenset(),
) -> tuple[Interaction | None, ReviewTask | None]:
    """The queue's "next": a blind row the user may answer first, else the ordinary next item.

    Returns (interaction, its blind row or None). Blind rows ignore the queue's model filters
    (predicted class, confidence): filtering on them would tell the reviewer the model's answer.
    """
    task = claim_blind_task(project=project, user=user, exclude_ids=exclude_ids)
    if task is not None:
        return task.interaction, task
    interaction = labels.claim_next_interaction(
        project=project, user=user, filters=filters, exclude_ids=exclude_ids
    )
    return interaction, None


def release_blind_task(*, task: ReviewTask, user: AbstractBaseUser) -> None:
    """The holder skips the row: it goes back to the pool (not to them: the skip hides the item
    from their queue). Side effects: a ReviewSkip, the claim dropped. Safe to run twice."""
    with transaction.atomic():
        ReviewTask.objects.filter(pk=task.pk, assignee=user, answered_at__isnull=True).update(
            assignee=None, claim_expires_at=None
        )
        ReviewSkip.objects.get_or_create(interaction_id=task.interaction_id, user=user)
        ReviewClaim.objects.filter(interaction_id=task.interaction_id, user=user).delete()


def answer_blind_task(
    *,
    task: ReviewTask,
    user: AbstractBaseUser,
    label_class: str | None,
    status: str = Label.Status.LABELED,
    note: str = "",
) -> ReviewTask:
    """Record the holder's blind answer on the row.

    second_opinion: stored on the row only; the first reviewer's Label stays; a disagreement
    (other class, or one of the two unclear) opens an adjudication. audit: the answer is written
    as the Label with source "audit" (services.labels; a LabelEvent with the model's class).
    Both snapshot what the answer is compared with (the label, the model's class). Raises
    NotYourBlindReview when the row is answered or held by someone else, InvalidLabelClass for a
    class outside the project. Not idempotent: a second answer is refused.
    """
    with transaction.atomic():
        locked = (
            ReviewTask.objects.select_for_update()
            .select_related("interaction__project")
            .filter(pk=task.pk)
            .first()
        )
        if locked is None or locked.answered_at is not None:
            raise NotYourBlindReview(
                f"This blind review of interaction {task.interaction_id} was answered already; "
                "nothing was saved."
            )
        if locked.assignee_id != user.pk or user.pk in earlier_answerer_ids(locked.interaction_id):
            raise NotYourBlindReview(
                f"The blind review of interaction {task.interaction_id} is not yours to answer "
                "(ask the queue for your next item); nothing was saved."
            )
        interaction = locked.interaction
        label_class = labels.validate_label_choice(interaction, label_class, status)
        current = Label.objects.filter(interaction=interaction).first()
        prediction = labels.active_prediction(interaction)
        if current is not None:
            locked.first_class = current.label_class
            locked.first_status = current.status
            locked.first_reviewer_id = current.author_id
            locked.first_source = current.source
        if prediction is not None:
            locked.predicted_class = prediction.predicted_class
            locked.model_version_id = prediction.model_version_id
        locked.answered_by = user
        locked.answered_at = timezone.now()
        locked.answer_class = label_class
        locked.answer_status = status
        locked.note = note
        locked.guideline_revision = interaction.project.guideline_revision
        try:
            with transaction.atomic():
                locked.save()
        except IntegrityError:
            raise NotYourBlindReview(
                f"You answered interaction {interaction.pk} before; nothing was saved."
            ) from None
        if locked.kind == ReviewTask.Kind.AUDIT:
            labels.record_review(
                interaction=interaction,
                user=user,
                label_class=label_class or None,
                status=status,
                note=note,
                expected_version=current.version if current else None,
                action=LabelEvent.Action.AUDIT,
                source=Label.Source.AUDIT,
            )
        else:
            ReviewClaim.objects.filter(interaction=interaction, user=user).delete()
            human = current is not None and current.source in HUMAN_SOURCES
            if human and locked.agrees_with_first is False:
                open_adjudication(
                    interaction=interaction,
                    review_task=locked,
                    reason=(
                        f"second opinion {_answer(locked.answer_status, locked.answer_class)} vs "
                        f"first answer {_answer(locked.first_status, locked.first_class)}"
                    ),
                )
        return locked


def _answer(status: str, label_class: str) -> str:
    if status == Label.Status.UNCLEAR:
        return "unclear"
    return repr(label_class)
