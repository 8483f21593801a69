"""Undo: a reviewer takes back their own last label change (the history keeps both)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotations.exceptions import EditConflict
from annotations.models import (
    Interaction,
    Label,
    LabelEvent,
    Project,
)
from annotations.services.labels.reviews import active_prediction, describe_label

# How far back undo looks through a user's own history (undo of undo of ... is bounded).
UNDO_HISTORY_LIMIT = 500


def _last_undoable_event(user: AbstractBaseUser, project: Project) -> LabelEvent | None:
    """The user's most recent label action in the project not undone yet (an undo stack).

    Per project: an undo event concerns the same interaction as the action it reverts, so each
    project's events form a stack of their own.
    """
    pending_undos = 0
    events = LabelEvent.objects.filter(actor=user, interaction__project=project).order_by("-id")[
        :UNDO_HISTORY_LIMIT
    ]
    for event in events:
        if event.action == LabelEvent.Action.UNDO:
            pending_undos += 1
        elif pending_undos:
            pending_undos -= 1
        else:
            return event
    return None


@dataclass(frozen=True)
class UndoneAction:
    """What an undo reverted: the interaction, its label now (None: removed), the UNDO event."""

    interaction: Interaction
    label: Label | None
    event: LabelEvent


def undo_last_action(*, user: AbstractBaseUser, project: Project) -> UndoneAction | None:
    """Revert the user's most recent label change in the project that is not undone yet
    (repeatable, like Ctrl-Z; another project's changes are never touched).

    Side effects: restores the previous class/status/source/author (or removes the label if there
    was none), appends an UNDO LabelEvent. Returns what was undone, or None when there is nothing
    to undo in the project. Raises EditConflict when someone else changed that label afterwards
    (their change is kept).
    """
    with transaction.atomic():
        event = _last_undoable_event(user, project)
        if event is None:
            return None
        interaction = Interaction.objects.select_related("project").get(pk=event.interaction_id)
        current = Label.objects.filter(interaction=interaction).first()
        if current is None or current.version != event.version:
            raise EditConflict(
                f"Cannot undo your {event.action} on interaction {interaction.pk}: "
                + (describe_label(current) if current else "its label was removed")
                + " afterwards. Nothing was undone."
            )
        previous = (
            LabelEvent.objects.filter(interaction=interaction, id__lt=event.id)
            .select_related("actor")
            .order_by("-id")
            .first()
        )
        prediction = active_prediction(interaction)
        if not event.old_status:
            # There was no label before this action: undo removes it.
            Label.objects.filter(pk=current.pk, version=current.version).delete()
            restored = None
            source = Label.Source.REVIEW
            version = current.version + 1
        else:
            source = previous.source if previous else Label.Source.SEED
            author = previous.actor if previous else None
            updated = Label.objects.filter(pk=current.pk, version=current.version).update(
                label_class=event.old_class,
                status=event.old_status,
                source=source,
                author=author,
                note=previous.note if previous else "",
                version=F("version") + 1,
                updated_at=timezone.now(),
            )
            if updated != 1:
                raise EditConflict(
                    f"Interaction {interaction.pk} changed while undoing; nothing was undone."
                )
            restored = Label.objects.get(pk=current.pk)
            version = restored.version
        undo = LabelEvent.objects.create(
            interaction=interaction,
            actor=user,
            action=LabelEvent.Action.UNDO,
            source=source,
            old_class=current.label_class,
            new_class=event.old_class,
            old_status=current.status,
            new_status=event.old_status,
            note=f"undo of event {event.pk}",
            version=version,
            model_version_id=prediction.model_version_id if prediction else None,
            predicted_class=prediction.predicted_class if prediction else "",
        )
        return UndoneAction(interaction=interaction, label=restored, event=undo)
