"""What a reviewer expects to see: how many items are left for them, and their session's pace."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from annotations.models import LabelEvent, Project, ReviewTask
from annotations.selectors.blind import count_open_tasks_for
from annotations.selectors.queue import QueueFilters, count_queue_items

# Counting stops here ("10,000+"): a COUNT over a million-row queue is not worth its cost.
LEFT_CAP = 10_000
_ANSWERS = (
    LabelEvent.Action.ACCEPT,
    LabelEvent.Action.CHANGE,
    LabelEvent.Action.FLAG,
    LabelEvent.Action.AUDIT,
)


@dataclass(frozen=True)
class ReviewProgress:
    left: int
    left_capped: bool
    done: int  # this session: labels, flags, blind answers
    minutes: float
    started_at: datetime

    @property
    def per_hour(self) -> float | None:
        return self.done * 60 / self.minutes if self.done and self.minutes >= 1 else None

    @property
    def seconds_per_item(self) -> float | None:
        return self.minutes * 60 / self.done if self.done and self.minutes >= 1 else None

    @property
    def left_text(self) -> str:
        return f"{LEFT_CAP:,}+" if self.left_capped else f"{self.left:,}"


def get_review_progress(
    *,
    project: Project,
    user: AbstractBaseUser,
    started_at: datetime,
    filters: QueueFilters | None = None,
) -> ReviewProgress:
    """Items left for `user` (their blind reviews plus the queue under `filters`, capped) and
    what they did since `started_at` (the start of their review session). Read-only."""
    queue_left = count_queue_items(project=project, user=user, filters=filters, cap=LEFT_CAP)
    left = queue_left + count_open_tasks_for(project=project, user=user)
    done = LabelEvent.objects.filter(
        actor=user,
        interaction__project=project,
        action__in=_ANSWERS,
        created_at__gte=started_at,
    ).count()
    done += (
        ReviewTask.objects.filter(
            answered_by=user, interaction__project=project, answered_at__gte=started_at
        )
        .exclude(kind=ReviewTask.Kind.AUDIT)  # an audit answer is a LabelEvent already
        .count()
    )
    minutes = (timezone.now() - started_at).total_seconds() / 60
    return ReviewProgress(
        left=min(left, LEFT_CAP),
        left_capped=left >= LEFT_CAP,
        done=done,
        minutes=minutes,
        started_at=started_at,
    )
