"""The simulated reviewer: picks items the way a strategy would and answers them from the reference,
through the queue selector and the label service."""

from __future__ import annotations

import random

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db.models import Exists, OuterRef

from annotations.models import Interaction, Label, Project, ReviewSkip
from annotations.roles import Role
from annotations.selectors.queue import (
    DEFAULT_PAGE_SIZE,
    QueueCursor,
    QueueFilters,
    get_review_queue_page,
)
from annotations.services.labels import record_review, skip_interaction
from annotations.simulation.reference import Reference

STRATEGIES = ("default", "random", "lowest-confidence", "no-lane")


SIMULATED_REVIEWER = "loop-simulated-reviewer"


def pick_items(
    *,
    project: Project,
    user: AbstractBaseUser,
    strategy: str,
    count: int,
    rng: random.Random,
) -> list[Interaction]:
    """The next `count` interactions a reviewer would get under `strategy`. Read-only.

    default: the review queue page exactly as the queue page shows it (default filters, default
    page size, pattern spread), page after page. lowest-confidence: the same selector in strict
    order (no spread). random: a uniform sample of the same pool (unreviewed, not skipped).
    no-lane: the queue page without its unseen-pattern lane (what the lane adds).
    """
    if strategy == "default":
        return _from_queue(project=project, user=user, count=count, spread=True)
    if strategy == "no-lane":
        return _from_queue(project=project, user=user, count=count, spread=True, unseen_lane=False)
    if strategy == "lowest-confidence":
        return _from_queue(project=project, user=user, count=count, spread=False)
    if strategy == "random":
        pool = list(
            Interaction.objects.filter(project=project)
            .exclude(Exists(Label.objects.filter(interaction_id=OuterRef("pk"))))
            .exclude(Exists(ReviewSkip.objects.filter(interaction_id=OuterRef("pk"), user=user)))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        chosen = sorted(rng.sample(pool, min(count, len(pool))))
        by_id = Interaction.objects.select_related("project").in_bulk(chosen)
        return [by_id[pk] for pk in chosen]
    raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")


def _from_queue(
    *, project: Project, user: AbstractBaseUser, count: int, spread: bool, unseen_lane: bool = True
) -> list[Interaction]:
    picked: list[Interaction] = []
    cursor: QueueCursor | None = None
    while len(picked) < count:
        page = get_review_queue_page(
            project=project,
            user=user,
            filters=QueueFilters(),
            cursor=cursor,
            page_size=DEFAULT_PAGE_SIZE,
            spread=spread,
            unseen_lane=unseen_lane,
        )
        picked.extend(item.interaction for item in page.items)
        if page.next_cursor is None:
            break
        cursor = QueueCursor.decode(page.next_cursor)
    return picked[:count]


def answer_items(
    *, items: list[Interaction], user: AbstractBaseUser, reference: Reference
) -> tuple[int, int]:
    """Review each item with the reference class through the label service; skip unknown ones.

    Returns (reviewed, skipped). Side effects: one Label + LabelEvent per reviewed item (the
    event records what the active model predicted), one ReviewSkip per skipped item.
    """
    reviewed = skipped = 0
    for interaction in items:
        label_class = reference.answer(interaction)
        if label_class is None:
            skip_interaction(interaction=interaction, user=user)
            skipped += 1
            continue
        current = Label.objects.filter(interaction=interaction).values_list("version", flat=True)
        record_review(
            interaction=interaction,
            user=user,
            label_class=label_class,
            expected_version=current.first(),
        )
        reviewed += 1
    return reviewed, skipped


def get_simulated_reviewer() -> AbstractBaseUser:
    """The simulated reviewer account (Reviewer role, unusable password). Safe to run twice."""
    user, created = get_user_model().objects.get_or_create(username=SIMULATED_REVIEWER)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    user.groups.add(Group.objects.get(name=Role.REVIEWER.value))
    return user
