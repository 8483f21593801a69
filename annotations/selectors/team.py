"""Reads for the curators' team-review pages: the adjudication queue and the flag inbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from annotations.models import (
    HUMAN_SOURCES,
    Adjudication,
    Label,
    LabelEvent,
    Prediction,
    Project,
    ReviewTask,
)
from annotations.selectors.versions import get_serving_model_version


@dataclass(frozen=True)
class Answer:
    """One person's answer on an item, as the adjudication page shows it side by side."""

    who: str
    kind: str  # "review", "second opinion", "audit"
    label_class: str
    status: str
    note: str
    at: datetime


@dataclass(frozen=True)
class AdjudicationItem:
    adjudication: Adjudication
    label: Label | None
    answers: list[Answer]
    # Only once decided: the curator decides before seeing what the model said.
    prediction: Prediction | None


def list_adjudications(*, project: Project, open_only: bool = True) -> QuerySet[Adjudication]:
    qs = Adjudication.objects.filter(interaction__project=project)
    if open_only:
        qs = qs.filter(decided_at__isnull=True)
    return qs.select_related("interaction", "decided_by").order_by("created_at", "id")


def list_answers(interaction_id: int) -> list[Answer]:
    """Every human answer on the interaction in time order: reviews (history) and blind rows."""
    answers = [
        Answer(
            who=event.actor.get_username(),
            kind="review" if event.source == Label.Source.REVIEW else event.source,
            label_class=event.new_class,
            status=event.new_status,
            note=event.note,
            at=event.created_at,
        )
        for event in LabelEvent.objects.filter(
            interaction_id=interaction_id,
            source__in=HUMAN_SOURCES,
            actor__isnull=False,
            action__in=[
                LabelEvent.Action.CREATE,
                LabelEvent.Action.ACCEPT,
                LabelEvent.Action.CHANGE,
                LabelEvent.Action.FLAG,
            ],
        )
        .select_related("actor")
        .order_by("id")
    ]
    for task in (
        ReviewTask.objects.filter(interaction_id=interaction_id, answered_at__isnull=False)
        .exclude(kind=ReviewTask.Kind.AUDIT)  # an audit answer is a LabelEvent already
        .select_related("answered_by")
    ):
        answers.append(
            Answer(
                who=task.answered_by.get_username() if task.answered_by else "?",
                kind=task.get_kind_display(),
                label_class=task.answer_class,
                status=task.answer_status,
                note=task.note,
                at=task.answered_at,
            )
        )
    return sorted(answers, key=lambda answer: answer.at)


def get_adjudication_item(*, adjudication: Adjudication) -> AdjudicationItem:
    interaction = adjudication.interaction
    prediction = None
    if not adjudication.is_open:
        version = get_serving_model_version(project=interaction.project)
        if version is not None:
            prediction = Prediction.objects.filter(
                interaction=interaction, model_version=version
            ).first()
    return AdjudicationItem(
        adjudication=adjudication,
        label=Label.objects.filter(interaction=interaction).first(),
        answers=list_answers(interaction.pk),
        prediction=prediction,
    )


def list_flagged_labels(*, project: Project) -> QuerySet[Label]:
    """The flag inbox: labels flagged unclear, oldest first, with who flagged and why."""
    return (
        Label.objects.filter(interaction__project=project, status=Label.Status.UNCLEAR)
        .select_related("interaction", "author")
        .order_by("updated_at", "id")
    )


def get_reopen_comment(interaction_id: int) -> LabelEvent | None:
    """The curator's comment when the item's last event sent it back to review."""
    last = (
        LabelEvent.objects.filter(interaction_id=interaction_id)
        .select_related("actor")
        .order_by("-id")
        .first()
    )
    return last if last is not None and last.action == LabelEvent.Action.REOPEN else None
