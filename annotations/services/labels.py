"""Label writes: the one entry point for every human label change (review, accept, flag, undo).

Optimistic locking: every Label carries a `version`; a write names the version it was based on and
lands only through `UPDATE ... WHERE version = expected` (or an INSERT guarded by the one-label-
per-interaction unique constraint). A stale write raises EditConflict and changes nothing. Every
change appends a LabelEvent (who, when, old -> new, what the active model predicted).

Claims: a reviewer working the queue holds a short lease (ReviewClaim) on the item shown to them,
so two reviewers pulling "next" are not handed the same item at the same time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from annotations.exceptions import EditConflict, InvalidLabelClass
from annotations.models import (
    Interaction,
    Label,
    LabelEvent,
    Prediction,
    Project,
    ReviewClaim,
    ReviewSkip,
)
from annotations.selectors.queue import QueueFilters, list_next_queue_items
from annotations.selectors.versions import get_serving_model_version
from annotations.services.second_opinions import request_second_opinion_if_due

CLAIM_TTL = timedelta(minutes=10)
# Leases one reviewer holds at once: taking another releases the oldest (a reviewer walking
# item pages or asking the queue again and again cannot lock the queue for everyone else).
MAX_CLAIMS_PER_USER = getattr(settings, "DDI_MAX_CLAIMS_PER_USER", 3)
# How far back undo looks through a user's own history (undo of undo of ... is bounded).
UNDO_HISTORY_LIMIT = 500


def active_prediction(interaction: Interaction) -> Prediction | None:
    active = get_serving_model_version(project=interaction.project)
    if active is None:
        return None
    return Prediction.objects.filter(interaction=interaction, model_version=active).first()


def _describe(label: Label) -> str:
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
            f"(the Back button shows the old one): {_describe(current)}. This older page's "
            "change was not saved; check the current label and decide again."
        )
    return EditConflict(
        f"Interaction {interaction.pk} was changed by someone else: {_describe(current)}. "
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
                + (_describe(current) if current else "its label was removed")
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
