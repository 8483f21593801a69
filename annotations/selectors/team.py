"""Reads for the curators' team-review pages: the adjudication queue and the flag inbox."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

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

_ANSWER_ACTIONS = (
    LabelEvent.Action.CREATE,
    LabelEvent.Action.ACCEPT,
    LabelEvent.Action.CHANGE,
    LabelEvent.Action.FLAG,
    LabelEvent.Action.AUDIT,
)


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
            action__in=_ANSWER_ACTIONS,
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


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def get_team_answers(interaction_ids: list[int]) -> dict[int, dict]:
    """Per interaction: every human answer (reviews, audits, blind second opinions, in time
    order) and the latest adjudication, JSON-ready (the JSONL export). Three queries per call."""
    reviews: dict[int, list[tuple]] = defaultdict(list)
    events = (
        LabelEvent.objects.filter(
            interaction_id__in=interaction_ids,
            source__in=HUMAN_SOURCES,
            actor__isnull=False,
            action__in=_ANSWER_ACTIONS,
        )
        .exclude(source=Label.Source.ADJUDICATION)
        .values_list(
            "interaction_id",
            "actor__username",
            "source",
            "new_class",
            "new_status",
            "note",
            "created_at",
            "id",
        )
    )
    for pk, who, source, cls, status, note, at, order in events:
        reviews[pk].append((at, 0, order, who, source, cls, status, note))
    tasks = (
        ReviewTask.objects.filter(interaction_id__in=interaction_ids, answered_at__isnull=False)
        .exclude(kind=ReviewTask.Kind.AUDIT)
        .values_list(
            "interaction_id",
            "answered_by__username",
            "kind",
            "answer_class",
            "answer_status",
            "note",
            "answered_at",
            "id",
        )
    )
    for pk, who, kind, cls, status, note, at, order in tasks:
        reviews[pk].append((at, 1, order, who, kind, cls, status, note))
    decided = {}
    for pk, who, cls, note, at in (
        Adjudication.objects.filter(interaction_id__in=interaction_ids, decided_at__isnull=False)
        .order_by("decided_at", "id")
        .values_list(
            "interaction_id", "decided_by__username", "decision_class", "note", "decided_at"
        )
    ):
        decided[pk] = {"decided_by": who, "label": cls, "note": note, "decided_at": _iso(at)}
    return {
        pk: {
            "reviews": [
                {
                    "reviewer": who,
                    "kind": kind,
                    "label": cls if status == Label.Status.LABELED else None,
                    "status": status,
                    "note": note,
                    "at": _iso(at),
                }
                for at, _, _, who, kind, cls, status, note in sorted(reviews.get(pk, []))
            ],
            "adjudication": decided.get(pk),
        }
        for pk in interaction_ids
    }
