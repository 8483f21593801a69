"""Claims: a reviewer working the queue holds a short lease (ReviewClaim) on the item shown to them,
so two reviewers pulling "next" are not handed the same item at the same time."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from annotations.models import (
    Interaction,
    Label,
    Project,
    ReviewClaim,
    ReviewSkip,
)
from annotations.selectors.queue import QueueFilters, list_next_queue_items

CLAIM_TTL = timedelta(minutes=10)


# Leases one reviewer holds at once: taking another releases the oldest (a reviewer walking
# item pages or asking the queue again and again cannot lock the queue for everyone else).
MAX_CLAIMS_PER_USER = getattr(settings, "DDI_MAX_CLAIMS_PER_USER", 3)


def skip_interaction(*, interaction: Interaction, user: AbstractBaseUser) -> None:
    """Hide the interaction from this reviewer's queue (other reviewers still get it).

    Side effects: one ReviewSkip row, the reviewer's claim released. Safe to run twice.
    """
    with transaction.atomic():
        ReviewSkip.objects.get_or_create(interaction=interaction, user=user)
        ReviewClaim.objects.filter(interaction=interaction, user=user).delete()


def claim_interaction(*, interaction_id: int, user: AbstractBaseUser) -> bool:
    """Take (or renew) the short review lease on one interaction; False if someone else holds it.

    Race-safe without locks: the renewal is a conditional UPDATE (mine or expired) and a fresh
    claim is an INSERT guarded by the one-claim-per-interaction constraint. Safe to run twice.
    """
    now = timezone.now()
    expires = now + CLAIM_TTL
    taken = ReviewClaim.objects.filter(
        Q(user=user) | Q(expires_at__lt=now), interaction_id=interaction_id
    ).update(user=user, expires_at=expires)
    if not taken:
        try:
            with transaction.atomic():
                ReviewClaim.objects.create(
                    interaction_id=interaction_id, user=user, expires_at=expires
                )
        except IntegrityError:
            return False
    _release_beyond_cap(user=user, keep=interaction_id)
    return True


def _release_beyond_cap(*, user: AbstractBaseUser, keep: int) -> None:
    mine = ReviewClaim.objects.filter(user=user).exclude(interaction_id=keep)
    older = list(mine.order_by("-expires_at", "-id").values_list("id", flat=True))
    if len(older) >= MAX_CLAIMS_PER_USER:
        ReviewClaim.objects.filter(id__in=older[MAX_CLAIMS_PER_USER - 1 :]).delete()


def claimed_by_other(*, interaction_id: int, user: AbstractBaseUser) -> bool:
    """Whether someone else holds a live lease on the interaction (read-only: opening an item
    page does not claim it; only the queue hands items out)."""
    return (
        ReviewClaim.objects.filter(interaction_id=interaction_id, expires_at__gte=timezone.now())
        .exclude(user=user)
        .exists()
    )


def claim_next_interaction(
    *,
    project: Project,
    user: AbstractBaseUser,
    filters: QueueFilters | None = None,
    exclude_ids: frozenset[int] = frozenset(),
) -> Interaction | None:
    """Claim and return the most uncertain queue item nobody else holds (None: queue empty).

    Side effects: one ReviewClaim for the user. Two reviewers calling this at once get two
    different items (the claim insert is the arbiter). Safe to run twice (renews the same claim).

    Thirty reviewers asking at once all see the same first candidates: on PostgreSQL the
    candidates are locked with FOR NO KEY UPDATE SKIP LOCKED (never waits, so no deadlock, and
    does not block the FK checks of label writes), so each caller tries the ones nobody else is
    trying; a caller that loses every candidate asks for the next ones instead of reporting an
    empty queue, and an item reviewed by someone else since the candidate list was read is let
    go after the claim (tests/reliability/test_concurrency.py found both: false "queue empty"
    answers, and items handed out again right after their reviewer saved them).
    """
    lost = set(exclude_ids)
    unreviewed_only = (filters or QueueFilters()).unreviewed_only
    while True:
        candidates = list_next_queue_items(
            project=project, user=user, filters=filters, exclude_ids=frozenset(lost)
        )
        if not candidates:
            return None
        with transaction.atomic():
            ids = [item.interaction.pk for item in candidates]
            free = set(ids)
            if connection.features.has_select_for_update_skip_locked:
                free = set(
                    Interaction.objects.select_for_update(skip_locked=True, no_key=True)
                    .filter(pk__in=ids)
                    .values_list("pk", flat=True)
                )
            for item in candidates:
                pk = item.interaction.pk
                if pk in free and claim_interaction(interaction_id=pk, user=user):
                    if not unreviewed_only or not Label.objects.filter(interaction_id=pk).exists():
                        return item.interaction
                    # Reviewed between our candidate list and our claim (its reviewer's claim
                    # was released by the save): not in the queue any more.
                    ReviewClaim.objects.filter(interaction_id=pk, user=user).delete()
                lost.add(pk)
