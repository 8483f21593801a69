"""The label-write service: optimistic locking, history, accept, flag, undo, skip, claims."""

from __future__ import annotations

import pytest

from annotations.exceptions import EditConflict, InvalidLabelClass
from annotations.models import Label, LabelEvent, ReviewClaim, ReviewSkip
from annotations.services import labels
from tests.factories import (
    InteractionFactory,
    ModelVersionFactory,
    PredictionFactory,
    ProjectFactory,
)


@pytest.fixture
def active_version(project):
    return ModelVersionFactory(project=project, is_active=True)


@pytest.fixture
def interaction(project, active_version):
    item = InteractionFactory(project=project)
    PredictionFactory(
        interaction=item,
        model_version=active_version,
        predicted_class="Antagonistic",
        confidence=0.7,
        margin=0.4,
        probabilities=[0.3, 0.7],
    )
    return item


def test_first_review_creates_label_version_one_and_one_event(interaction, reviewer_rita):
    label = labels.record_review(
        interaction=interaction,
        user=reviewer_rita,
        label_class="Synergistic",
        expected_version=None,
    )
    assert (label.label_class, label.source, label.version) == ("Synergistic", "review", 1)
    event = LabelEvent.objects.get(interaction=interaction)
    assert (event.actor, event.old_class, event.new_class, event.version) == (
        reviewer_rita,
        "",
        "Synergistic",
        1,
    )
    assert event.predicted_class == "Antagonistic"
    assert event.model_version.is_active


def test_second_save_on_a_stale_version_is_a_conflict_and_overwrites_nothing(
    interaction, reviewer_rita, reviewer_rob
):
    labels.record_review(
        interaction=interaction,
        user=reviewer_rita,
        label_class="Synergistic",
        expected_version=None,
    )
    # Rob loaded the page before Rita saved: he thinks there is no label yet.
    with pytest.raises(EditConflict) as caught:
        labels.record_review(
            interaction=interaction,
            user=reviewer_rob,
            label_class="Antagonistic",
            expected_version=None,
        )
    assert "rita saved 'Synergistic'" in str(caught.value)
    label = Label.objects.get(interaction=interaction)
    assert (label.label_class, label.author, label.version) == ("Synergistic", reviewer_rita, 1)
    assert LabelEvent.objects.filter(interaction=interaction).count() == 1


def test_update_with_the_current_version_bumps_it_and_records_old_to_new(
    interaction, reviewer_rita, reviewer_rob
):
    labels.record_review(
        interaction=interaction,
        user=reviewer_rita,
        label_class="Synergistic",
        expected_version=None,
    )
    label = labels.record_review(
        interaction=interaction, user=reviewer_rob, label_class="Antagonistic", expected_version=1
    )
    assert (label.version, label.author) == (2, reviewer_rob)
    last = LabelEvent.objects.filter(interaction=interaction).last()
    assert (last.old_class, last.new_class, last.actor, last.version) == (
        "Synergistic",
        "Antagonistic",
        reviewer_rob,
        2,
    )
    with pytest.raises(EditConflict):
        labels.record_review(
            interaction=interaction,
            user=reviewer_rita,
            label_class="Synergistic",
            expected_version=1,
        )


def test_accept_takes_the_active_model_prediction(interaction, reviewer_rita):
    label = labels.accept_prediction(
        interaction=interaction, user=reviewer_rita, expected_version=None
    )
    assert label.label_class == "Antagonistic"
    assert LabelEvent.objects.get(interaction=interaction).action == LabelEvent.Action.ACCEPT


def test_accept_without_a_prediction_is_refused(project, reviewer_rita):
    item = InteractionFactory(project=project)
    with pytest.raises(InvalidLabelClass, match="no prediction"):
        labels.accept_prediction(interaction=item, user=reviewer_rita, expected_version=None)
    assert not Label.objects.exists()


def test_a_class_outside_the_project_is_refused_and_nothing_written(interaction, reviewer_rita):
    with pytest.raises(InvalidLabelClass, match="Additive"):
        labels.record_review(
            interaction=interaction,
            user=reviewer_rita,
            label_class="Additive",
            expected_version=None,
        )
    assert not Label.objects.exists()
    assert not LabelEvent.objects.exists()


def test_any_project_classes_work_not_just_two(reviewer_rita):
    project = ProjectFactory(label_classes=["Mechanism", "Effect", "Advise", "Int"])
    item = InteractionFactory(project=project)
    label = labels.record_review(
        interaction=item, user=reviewer_rita, label_class="Advise", expected_version=None
    )
    assert label.label_class == "Advise"


def test_flag_as_unclear_keeps_the_note(interaction, reviewer_rita):
    label = labels.record_review(
        interaction=interaction,
        user=reviewer_rita,
        label_class=None,
        status=Label.Status.UNCLEAR,
        note="sentence names a third drug",
        expected_version=None,
        action=LabelEvent.Action.FLAG,
    )
    assert (label.status, label.label_class, label.note) == (
        "unclear",
        "",
        "sentence names a third drug",
    )
    assert LabelEvent.objects.get().action == "flag"


def test_undo_restores_the_seed_label_with_its_source(interaction, reviewer_rita):
    seed = Label.objects.create(
        interaction=interaction, label_class="Antagonistic", source=Label.Source.SEED
    )
    LabelEvent.objects.create(
        interaction=interaction,
        action=LabelEvent.Action.CREATE,
        source=Label.Source.SEED,
        new_class="Antagonistic",
        new_status="labeled",
        version=1,
    )
    labels.record_review(
        interaction=interaction, user=reviewer_rita, label_class="Synergistic", expected_version=1
    )
    restored = labels.undo_last_action(user=reviewer_rita, project=interaction.project).label
    assert restored.pk == seed.pk
    assert (restored.label_class, restored.source, restored.author, restored.version) == (
        "Antagonistic",
        "seed",
        None,
        3,
    )
    undo = LabelEvent.objects.filter(interaction=interaction).last()
    assert (undo.action, undo.old_class, undo.new_class, undo.actor) == (
        "undo",
        "Synergistic",
        "Antagonistic",
        reviewer_rita,
    )


def test_undo_of_a_first_label_removes_it_and_versions_keep_counting(
    interaction, reviewer_rita, reviewer_rob
):
    labels.record_review(
        interaction=interaction,
        user=reviewer_rita,
        label_class="Synergistic",
        expected_version=None,
    )
    undone = labels.undo_last_action(user=reviewer_rita, project=interaction.project)
    assert undone.interaction == interaction and undone.label is None
    assert not Label.objects.filter(interaction=interaction).exists()
    # A page loaded when version 1 existed cannot match the re-created label.
    label = labels.record_review(
        interaction=interaction,
        user=reviewer_rob,
        label_class="Antagonistic",
        expected_version=None,
    )
    assert label.version == 3


def test_undo_walks_back_like_a_stack_and_stops_when_empty(project, active_version, reviewer_rita):
    first, second = InteractionFactory(project=project), InteractionFactory(project=project)
    labels.record_review(
        interaction=first, user=reviewer_rita, label_class="Synergistic", expected_version=None
    )
    labels.record_review(
        interaction=second, user=reviewer_rita, label_class="Synergistic", expected_version=None
    )
    labels.undo_last_action(user=reviewer_rita, project=project)
    assert not Label.objects.filter(interaction=second).exists()
    assert Label.objects.filter(interaction=first).exists()
    labels.undo_last_action(user=reviewer_rita, project=project)
    assert not Label.objects.exists()
    assert labels.undo_last_action(user=reviewer_rita, project=project) is None


def test_undo_after_someone_else_changed_the_label_is_a_conflict(
    interaction, reviewer_rita, reviewer_rob
):
    labels.record_review(
        interaction=interaction,
        user=reviewer_rita,
        label_class="Synergistic",
        expected_version=None,
    )
    labels.record_review(
        interaction=interaction, user=reviewer_rob, label_class="Antagonistic", expected_version=1
    )
    with pytest.raises(EditConflict, match="rob saved 'Antagonistic'"):
        labels.undo_last_action(user=reviewer_rita, project=interaction.project)
    assert Label.objects.get(interaction=interaction).label_class == "Antagonistic"


def test_skip_is_idempotent_and_releases_the_claim(interaction, reviewer_rita):
    assert labels.claim_interaction(interaction_id=interaction.pk, user=reviewer_rita)
    labels.skip_interaction(interaction=interaction, user=reviewer_rita)
    labels.skip_interaction(interaction=interaction, user=reviewer_rita)
    assert ReviewSkip.objects.filter(interaction=interaction, user=reviewer_rita).count() == 1
    assert not ReviewClaim.objects.exists()


def test_two_reviewers_pulling_next_get_different_items(
    project, active_version, reviewer_rita, reviewer_rob
):
    for confidence in (0.55, 0.6, 0.9):
        PredictionFactory(
            interaction=InteractionFactory(project=project),
            model_version=active_version,
            confidence=confidence,
        )
    rita_item = labels.claim_next_interaction(project=project, user=reviewer_rita)
    rob_item = labels.claim_next_interaction(project=project, user=reviewer_rob)
    assert rita_item != rob_item
    assert rita_item.predictions.get().confidence == 0.55
    assert rob_item.predictions.get().confidence == 0.6
    # Asking again renews Rita's own claim instead of handing her a new item.
    assert labels.claim_next_interaction(project=project, user=reviewer_rita) == rita_item


def test_a_saved_review_releases_the_reviewers_claim(interaction, reviewer_rita):
    labels.claim_interaction(interaction_id=interaction.pk, user=reviewer_rita)
    labels.accept_prediction(interaction=interaction, user=reviewer_rita, expected_version=None)
    assert not ReviewClaim.objects.exists()


def test_undo_is_scoped_to_the_project_and_says_what_it_undid(project, reviewer_rita):
    other = ProjectFactory(name="Other project")
    here, there = InteractionFactory(project=project), InteractionFactory(project=other)
    labels.record_review(
        interaction=here, user=reviewer_rita, label_class="Synergistic", expected_version=None
    )
    labels.record_review(
        interaction=there, user=reviewer_rita, label_class="Antagonistic", expected_version=None
    )

    undone = labels.undo_last_action(user=reviewer_rita, project=project)

    assert undone.interaction == here
    assert undone.event.action == LabelEvent.Action.UNDO
    assert (undone.event.old_class, undone.event.new_class) == ("Synergistic", "")
    assert not Label.objects.filter(interaction=here).exists()
    assert Label.objects.get(interaction=there).label_class == "Antagonistic"
    assert labels.undo_last_action(user=reviewer_rita, project=project) is None
    assert labels.undo_last_action(user=reviewer_rita, project=other).interaction == there


def test_a_stale_page_of_the_users_own_edit_says_another_tab_not_someone_else(
    interaction, reviewer_rita
):
    labels.record_review(
        interaction=interaction,
        user=reviewer_rita,
        label_class="Synergistic",
        expected_version=None,
    )
    # Back button: the page still shows "no label yet"; Rita decides again on it.
    with pytest.raises(EditConflict) as caught:
        labels.record_review(
            interaction=interaction,
            user=reviewer_rita,
            label_class="Antagonistic",
            expected_version=None,
        )
    message = str(caught.value)
    assert "You changed interaction" in message and "another tab" in message
    assert "someone else" not in message
    assert Label.objects.get(interaction=interaction).label_class == "Synergistic"
