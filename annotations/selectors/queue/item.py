"""One review item: the interaction with its prediction, rule matches and the reviewer's own
label."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser

from annotations.models import (
    Interaction,
    Label,
    LabelEvent,
    Prediction,
    ReviewTask,
)
from annotations.selectors.blind import list_answered_tasks, open_blind_task
from annotations.selectors.versions import get_serving_model_version


@dataclass(frozen=True)
class ReviewItem:
    """Everything the review page shows about one interaction."""

    interaction: Interaction
    label: Label | None
    prediction: Prediction | None
    class_probabilities: list[tuple[int, str, float | None]]  # (key digit, class, probability)
    history: list[LabelEvent]
    # The user's open blind row on it: set, the page shows neither the label, the model, nor
    # the history (label/prediction/history are then empty, not just hidden by the template).
    blind_task: ReviewTask | None = None
    # Answered blind rows (second opinions, audit), shown with whether they agreed.
    blind_answers: list[ReviewTask] = field(default_factory=list)

    @property
    def is_blind(self) -> bool:
        return self.blind_task is not None


def get_review_item(
    *, interaction: Interaction, user: AbstractBaseUser | None = None, history_limit: int = 50
) -> ReviewItem:
    """The label, the active model's prediction and the label history of one interaction.

    For a `user` blind on it (selectors/blind.py) only the sentence and the class list come
    back: the label, prediction, probabilities and history are left out.
    """
    project = interaction.project
    blind_task = open_blind_task(user, interaction)
    if blind_task is not None:
        return ReviewItem(
            interaction=interaction,
            label=None,
            prediction=None,
            class_probabilities=[
                (index + 1, name, None) for index, name in enumerate(project.label_classes)
            ],
            history=[],
            blind_task=blind_task,
        )
    label = Label.objects.select_related("author").filter(interaction=interaction).first()
    model_version = get_serving_model_version(project=project)
    prediction = (
        Prediction.objects.filter(interaction=interaction, model_version=model_version).first()
        if model_version
        else None
    )
    classes = list(project.label_classes)
    probabilities = list(prediction.probabilities) if prediction else []
    class_probabilities = [
        (index + 1, name, probabilities[index] if index < len(probabilities) else None)
        for index, name in enumerate(classes)
    ]
    history = list(
        LabelEvent.objects.filter(interaction=interaction)
        .select_related("actor")
        .order_by("-id")[:history_limit]
    )
    return ReviewItem(
        interaction=interaction,
        label=label,
        prediction=prediction,
        class_probabilities=class_probabilities,
        history=history,
        blind_answers=list_answered_tasks(interaction),
    )
