"""Blind review reads: who is blind for which interaction, and which blind rows a user may get.

A user is *blind* for an interaction while they hold an unanswered ReviewTask on it (a second
opinion or an audit item handed to them). While blind, every page, fragment and endpoint hides
the model's class, confidence and "why", every rule's class and every earlier answer of that
interaction; after the answer the user sees them again, with whether the answers agreed.

The item's *earlier answerers* never get a blind row on it: the actors of its LabelEvents (seed
and import events have no actor) and the answerers of its other ReviewTasks.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Case, Exists, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone

from annotations.models import Interaction, LabelEvent, Project, ReviewTask


def _open_tasks() -> QuerySet[ReviewTask]:
    return ReviewTask.objects.filter(answered_at__isnull=True)


def open_blind_task(
    user: AbstractBaseUser | None, interaction: Interaction | int
) -> ReviewTask | None:
    """The unanswered ReviewTask the user holds on the interaction (None: not blind for it)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    interaction_id = interaction if isinstance(interaction, int) else interaction.pk
    return _open_tasks().filter(interaction_id=interaction_id, assignee=user).first()


def is_blind_for(user: AbstractBaseUser | None, interaction: Interaction | int) -> bool:
    """Whether the user must not see the model's or earlier reviewers' answers on it now."""
    return open_blind_task(user, interaction) is not None


def blind_interaction_ids(user: AbstractBaseUser | None, ids=None) -> set[int]:
    """The interaction ids (optionally among `ids`) the user is blind for: one query, for
    lists and pages that show many items."""
    if user is None or not getattr(user, "is_authenticated", False):
        return set()
    qs = _open_tasks().filter(assignee=user)
    if ids is not None:
        qs = qs.filter(interaction_id__in=list(ids))
    return set(qs.values_list("interaction_id", flat=True))


def blind_interactions_subquery(user: AbstractBaseUser) -> QuerySet[ReviewTask]:
    """For `.exclude(interaction_id__in=...)` / `Exists` in API querysets."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ReviewTask.objects.none().values("interaction_id")
    return _open_tasks().filter(assignee=user).values("interaction_id")


def earlier_answerer_ids(interaction: Interaction | int) -> set[int]:
    """Users who already answered this interaction (never handed a blind row on it)."""
    interaction_id = interaction if isinstance(interaction, int) else interaction.pk
    actors = LabelEvent.objects.filter(
        interaction_id=interaction_id, actor__isnull=False
    ).values_list("actor_id", flat=True)
    answerers = ReviewTask.objects.filter(
        interaction_id=interaction_id, answered_by__isnull=False
    ).values_list("answered_by_id", flat=True)
    return set(actors) | set(answerers)


def list_offerable_tasks(
    *, project: Project, user: AbstractBaseUser, kinds: tuple[str, ...] | None = None
) -> QuerySet[ReviewTask]:
    """Open rows the queue may hand to `user`, oldest first (read-only).

    Offerable: unanswered; held by nobody, by `user`, or on an expired queue lease; not on an
    interaction the user answered before (as a labeler or a blind answerer).
    """
    now = timezone.now()
    qs = (
        _open_tasks()
        .filter(interaction__project=project)
        .filter(
            Q(assignee__isnull=True)
            | Q(assignee=user)
            | Q(claim_expires_at__isnull=False, claim_expires_at__lt=now)
        )
    )
    if kinds is not None:
        qs = qs.filter(kind__in=kinds)
    ref = OuterRef("interaction_id")
    qs = qs.exclude(Exists(LabelEvent.objects.filter(interaction_id=ref, actor=user)))
    qs = qs.exclude(Exists(ReviewTask.objects.filter(interaction_id=ref, answered_by=user)))
    # The user's own rows first (a reload must show the same item again), then oldest.
    mine_first = Case(When(assignee=user, then=Value(0)), default=Value(1))
    return qs.select_related("interaction").order_by(mine_first, "created_at", "id")


def count_open_tasks_for(*, project: Project, user: AbstractBaseUser) -> int:
    """How many blind rows the queue could still hand to this user."""
    return list_offerable_tasks(project=project, user=user).count()


def list_answered_tasks(interaction: Interaction | int) -> list[ReviewTask]:
    """The interaction's answered blind rows with their answerers (for the history view)."""
    interaction_id = interaction if isinstance(interaction, int) else interaction.pk
    return list(
        ReviewTask.objects.filter(interaction_id=interaction_id, answered_at__isnull=False)
        .select_related("answered_by", "first_reviewer")
        .order_by("answered_at", "id")
    )


def _said(status: str, label_class: str) -> str:
    return "unclear" if status == "unclear" else f"“{label_class}”"


def describe_blind_answer(task: ReviewTask) -> str:
    """One sentence for the reviewer right after a blind answer: did it agree? Pure."""
    it = task.interaction
    answer = _said(task.answer_status, task.answer_class)
    parts = [f"Blind answer saved for {it.drug_a} + {it.drug_b}: {answer}."]
    if task.agrees_with_first is not None:
        verdict = "agrees with" if task.agrees_with_first else "differs from"
        then = ""
        if not task.agrees_with_first and task.kind == ReviewTask.Kind.SECOND_OPINION:
            then = "; a curator will adjudicate"
        parts.append(
            f"It {verdict} the earlier answer ({_said(task.first_status, task.first_class)}){then}."
        )
    if task.agrees_with_model is not None:
        verdict = "agrees with" if task.agrees_with_model else "differs from"
        parts.append(f"It {verdict} the model (“{task.predicted_class}”).")
    return " ".join(parts)
