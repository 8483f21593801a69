"""Reviewing writes: record a review, accept a prediction, return an item to review; each one
under optimistic locking with a LabelEvent (see the package docstring)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotations.exceptions import EditConflict, InvalidLabelClass
from annotations.models import (
    Interaction,
    Label,
    LabelEvent,
    Prediction,
    ReviewClaim,
)
from annotations.selectors.versions import get_serving_model_version
from annotations.services.second_opinions import request_second_opinion_if_due


def active_prediction(interaction: Interaction) -> Prediction | None:
    active = get_serving_model_version(project=interaction.project)
    if active is None:
        return None
    return Prediction.objects.filter(interaction=interaction, model_version=active).first()


def describe_label(label: Label) -> str:
    who = label.author.get_username() if label.author else "an import"
    what = label.label_class if label.status == Label.Status.LABELED else "unclear (flagged)"
    when = timezone.localtime(label.updated_at).strftime("%Y-%m-%d %H:%M")
    return f"{who} saved {what!r} (version {label.version}, {when})"


def _conflict(
    interaction: Interaction, expected_version: int | None, user: AbstractBaseUser | None
) -> EditConflict:
    current = Label.objects.select_related("author").filter(interaction=interaction).first()
    if current is None:
        return EditConflict(
            f"Interaction {interaction.pk}: the label you loaded (version {expected_version}) "
            "was removed in the meantime. Nothing was saved; reload the item."
        )
    if user is not None and current.author_id == user.pk:
        # The usual cause: the browser's Back button (or a second tab) showed an older page.
        return EditConflict(
            f"You changed interaction {interaction.pk} in another tab or on a newer page "
            f"(the Back button shows the old one): {describe_label(current)}. This older page's "
            "change was not saved; check the current label and decide again."
        )
    return EditConflict(
        f"Interaction {interaction.pk} was changed by someone else: {describe_label(current)}. "
        "Your change was not saved and nothing was overwritten; check the current label and "
        "decide again."
    )


def validate_label_choice(interaction: Interaction, label_class: str | None, status: str) -> str:
    classes = list(interaction.project.label_classes)
    if status == Label.Status.UNCLEAR:
        if label_class and label_class not in classes:
            raise InvalidLabelClass(
                f"{label_class!r} is not a class of project {interaction.project.name!r} "
                f"(classes: {', '.join(classes)})."
            )
        return label_class or ""
    if status != Label.Status.LABELED:
        raise InvalidLabelClass(f"Unknown label status {status!r}.")
    if not label_class or label_class not in classes:
        raise InvalidLabelClass(
            f"{label_class!r} is not a class of project {interaction.project.name!r} "
            f"(classes: {', '.join(classes)})."
        )
    return label_class


def _write(
    *,
    interaction: Interaction,
    user: AbstractBaseUser | None,
    label_class: str,
    status: str,
    source: str,
    note: str,
    expected_version: int | None,
    action: str,
) -> Label:
    """Conditional insert/update plus one LabelEvent, inside the caller's transaction."""
    prediction = active_prediction(interaction)
    current = Label.objects.filter(interaction=interaction).first()
    if current is None:
        if expected_version is not None:
            raise _conflict(interaction, expected_version, user)
        # Versions keep counting across an undo that removed the label, so a page loaded before
        # the removal can never match a re-created label by accident.
        last = (
            LabelEvent.objects.filter(interaction=interaction)
            .order_by("-id")
            .values_list("version", flat=True)
            .first()
        )
        new_version = (last or 0) + 1
        try:
            # Savepoint: a concurrent insert hits the one-to-one constraint and must not poison
            # the outer transaction.
            with transaction.atomic():
                label = Label.objects.create(
                    interaction=interaction,
                    label_class=label_class,
                    status=status,
                    source=source,
                    author=user,
                    note=note,
                    version=new_version,
                )
        except IntegrityError:
            raise _conflict(interaction, expected_version, user) from None
        old_class, old_status = "", ""
    else:
        if expected_version != current.version:
            raise _conflict(interaction, expected_version, user)
        updated = Label.objects.filter(pk=current.pk, version=expected_version).update(
            label_class=label_class,
            status=status,
            source=source,
            author=user,
            note=note,
            version=F("version") + 1,
            updated_at=timezone.now(),
        )
        if updated != 1:  # lost the race between our read and our write
            raise _conflict(interaction, expected_version, user)
        label = Label.objects.get(pk=current.pk)
        old_class, old_status = current.label_class, current.status
    LabelEvent.objects.create(
        interaction=interaction,
        actor=user,
        action=action,
        source=source,
        old_class=old_class,
        new_class=label_class,
        old_status=old_status,
        new_status=status,
        note=note,
        version=label.version,
        model_version_id=prediction.model_version_id if prediction else None,
        predicted_class=prediction.predicted_class if prediction else "",
        guideline_revision=interaction.project.guideline_revision,
    )
    # The item is done for this reviewer: free the lease so nobody waits for it to expire.
    ReviewClaim.objects.filter(interaction=interaction, user=user).delete()
    return label


def record_review(
    *,
    interaction: Interaction,
    user: AbstractBaseUser,
    label_class: str | None,
    status: str = Label.Status.LABELED,
    note: str = "",
    expected_version: int | None,
    action: str = LabelEvent.Action.CHANGE,
    source: str = Label.Source.REVIEW,
) -> Label:
    """Save a reviewer's decision on one interaction (class, or flagged unclear with a note).

    `expected_version` is the Label.version the reviewer saw (None: there was no label).
    `source` is review, or audit / adjudication for the blind-audit and adjudication services.
    A plain review (source review, status labeled) may open a blind second opinion
    (services/second_opinions.py, the project's share and confidence floor).
    Side effects: inserts/updates the Label (version + 1), appends one LabelEvent, releases the
    reviewer's claim. Raises EditConflict if the label changed since it was loaded (nothing is
    written) and InvalidLabelClass for a class outside project.label_classes. Not idempotent by
    design: a replay with the same expected_version is a conflict, never a double write.
    """
    label_class = validate_label_choice(interaction, label_class, status)
    with transaction.atomic():
        label = _write(
            interaction=interaction,
            user=user,
            label_class=label_class,
            status=status,
            source=source,
            note=note,
            expected_version=expected_version,
            action=action,
        )
        if source == Label.Source.REVIEW and status == Label.Status.LABELED:
            request_second_opinion_if_due(
                interaction=interaction, prediction=active_prediction(interaction)
            )
        return label


def accept_prediction(
    *, interaction: Interaction, user: AbstractBaseUser, expected_version: int | None
) -> Label:
    """Label the interaction with the active model version's predicted class.

    Side effects and conflicts as record_review. Raises InvalidLabelClass when there is no
    prediction from the active model to accept.
    """
    prediction = active_prediction(interaction)
    if prediction is None:
        raise InvalidLabelClass(
            f"Interaction {interaction.pk} has no prediction from the active model to accept; "
            "choose a class instead."
        )
    return record_review(
        interaction=interaction,
        user=user,
        label_class=prediction.predicted_class,
        expected_version=expected_version,
        action=LabelEvent.Action.ACCEPT,
    )


def return_to_review(
    *, interaction: Interaction, user: AbstractBaseUser, comment: str, expected_version: int
) -> None:
    """A curator sends a flagged item back to the review queue with a comment.

    Side effects: the Label is removed (so the queue offers the item again), one REOPEN
    LabelEvent carries the comment (the review page shows it). Raises EditConflict when the
    label changed since the curator loaded it (nothing is written). Not idempotent: a replay
    finds no label and is a conflict.
    """
    with transaction.atomic():
        current = Label.objects.filter(interaction=interaction).first()
        if current is None or current.version != expected_version:
            raise _conflict(interaction, expected_version, user)
        deleted, _ = Label.objects.filter(pk=current.pk, version=expected_version).delete()
        if not deleted:
            raise _conflict(interaction, expected_version, user)
        prediction = active_prediction(interaction)
        LabelEvent.objects.create(
            interaction=interaction,
            actor=user,
            action=LabelEvent.Action.REOPEN,
            source=current.source,
            old_class=current.label_class,
            new_class="",
            old_status=current.status,
            new_status="",
            note=comment,
            version=current.version + 1,
            model_version_id=prediction.model_version_id if prediction else None,
            predicted_class=prediction.predicted_class if prediction else "",
            guideline_revision=interaction.project.guideline_revision,
        )
