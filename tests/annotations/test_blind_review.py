"""Blind review (second opinions, audit rows): hand-out, blindness on every surface, answers."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from rest_framework.test import APIClient

from annotations.exceptions import NotYourBlindReview
from annotations.final_label_order import SOURCES
from annotations.models import Adjudication, Label, LabelEvent, ReviewTask
from annotations.roles import Role
from annotations.selectors.blind import is_blind_for
from annotations.selectors.final_labels import iter_final_labels
from annotations.services import blind, labels
from tests.factories import (
    InteractionFactory,
    ModelVersionFactory,
    PredictionFactory,
    UserFactory,
)

MODEL_SAYS = "Antagonistic"  # the model's class in these tests (a string a page could leak)


@pytest.fixture
def always_second_opinion(project):
    project.second_opinion_rate = 1.0
    project.save()
    return project


@pytest.fixture
def reviewed_item(always_second_opinion, reviewer_rita):
    """Rita reviewed an item the model calls Antagonistic; she said Synergistic."""
    project = always_second_opinion
    version = ModelVersionFactory(project=project, is_active=True)
    interaction = InteractionFactory(project=project)
    PredictionFactory(
        interaction=interaction,
        model_version=version,
        predicted_class=MODEL_SAYS,
        confidence=0.61,
        margin=0.22,
        probabilities=[0.39, 0.61],
        signals={"why": ["a pattern never reviewed (zzz-why-marker)"]},
    )
    labels.record_review(
        interaction=interaction,
        user=reviewer_rita,
        label_class="Synergistic",
        note="rita-first-note",
        expected_version=None,
    )
    return interaction


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_review_opens_one_second_opinion_and_the_first_reviewer_never_gets_it(
    reviewed_item, reviewer_rita
):
    task = ReviewTask.objects.get(interaction=reviewed_item)
    assert task.kind == ReviewTask.Kind.SECOND_OPINION and task.is_open
    assert blind.claim_blind_task(project=reviewed_item.project, user=reviewer_rita) is None


def test_the_share_is_a_stable_draw_and_the_floor_catches_low_confidence(project, reviewer_rita):
    from annotations.services.second_opinions import in_second_opinion_sample

    picked = sum(in_second_opinion_sample(i, 0.10) for i in range(1, 20001))
    assert 1800 < picked < 2200  # 10 % of 20,000 items, within 2 %
    assert in_second_opinion_sample(42, 0.10) == in_second_opinion_sample(42, 0.10)
    project.second_opinion_rate = 0.0
    project.second_opinion_below_confidence = 0.7
    project.save()
    version = ModelVersionFactory(project=project, is_active=True)
    low, high = InteractionFactory(project=project), InteractionFactory(project=project)
    PredictionFactory(interaction=low, model_version=version, confidence=0.55)
    PredictionFactory(interaction=high, model_version=version, confidence=0.95)
    for item in (low, high):
        labels.record_review(
            interaction=item, user=reviewer_rita, label_class="Synergistic", expected_version=None
        )
    reasons = dict(ReviewTask.objects.values_list("interaction_id", "reason"))
    assert reasons == {low.pk: ReviewTask.Reason.LOW_CONFIDENCE}


def test_the_queue_hands_the_second_opinion_to_another_reviewer_first_and_only_once(
    reviewed_item, reviewer_rob
):
    project = reviewed_item.project
    other = InteractionFactory(project=project)  # an ordinary, unreviewed item
    PredictionFactory(interaction=other, model_version=project.model_versions.get())
    interaction, task = blind.claim_next_item(project=project, user=reviewer_rob)
    assert interaction == reviewed_item and task is not None
    assert is_blind_for(reviewer_rob, reviewed_item)
    blind.answer_blind_task(task=task, user=reviewer_rob, label_class="Synergistic")
    assert not is_blind_for(reviewer_rob, reviewed_item)
    # Never twice: the next call is the ordinary queue.
    interaction, task = blind.claim_next_item(project=project, user=reviewer_rob)
    assert interaction == other and task is None


def test_two_reviewers_asking_at_once_never_hold_the_same_row(reviewed_item, reviewer_rob):
    sam = UserFactory(username="sam", role=Role.REVIEWER)
    first = blind.claim_blind_task(project=reviewed_item.project, user=reviewer_rob)
    second = blind.claim_blind_task(project=reviewed_item.project, user=sam)
    assert first is not None and second is None
    with pytest.raises(NotYourBlindReview):
        blind.answer_blind_task(task=first, user=sam, label_class="Synergistic")


def test_a_person_answers_an_interaction_once_by_constraint(reviewed_item, reviewer_rob):
    task = blind.claim_blind_task(project=reviewed_item.project, user=reviewer_rob)
    blind.answer_blind_task(task=task, user=reviewer_rob, label_class="Synergistic")
    again = ReviewTask.objects.create(interaction=reviewed_item, kind=ReviewTask.Kind.AUDIT)
    again.answered_by, again.answer_status = reviewer_rob, Label.Status.LABELED
    again.answered_at = task.answered_at
    with pytest.raises(IntegrityError), transaction.atomic():
        again.save()


def test_a_disagreeing_second_opinion_keeps_the_first_label_and_opens_adjudication(
    reviewed_item, reviewer_rita, reviewer_rob
):
    task = blind.claim_blind_task(project=reviewed_item.project, user=reviewer_rob)
    answered = blind.answer_blind_task(
        task=task, user=reviewer_rob, label_class="Antagonistic", note="rob thinks less drug"
    )
    label = Label.objects.get(interaction=reviewed_item)
    assert (label.label_class, label.author, label.source) == (
        "Synergistic",
        reviewer_rita,
        Label.Source.REVIEW,
    )
    assert answered.agrees_with_first is False and answered.agrees_with_model is True
    assert answered.first_reviewer == reviewer_rita and answered.predicted_class == MODEL_SAYS
    assert Adjudication.objects.filter(interaction=reviewed_item, decided_at=None).count() == 1


def test_an_agreeing_second_opinion_opens_no_adjudication(reviewed_item, reviewer_rob):
    task = blind.claim_blind_task(project=reviewed_item.project, user=reviewer_rob)
    blind.answer_blind_task(task=task, user=reviewer_rob, label_class="Synergistic")
    assert not Adjudication.objects.exists()


def test_an_audit_answer_becomes_the_label_with_source_audit_and_counts_as_a_review(
    project, reviewer_rob
):
    version = ModelVersionFactory(project=project, is_active=True)
    interaction = InteractionFactory(project=project)
    PredictionFactory(interaction=interaction, model_version=version, predicted_class=MODEL_SAYS)
    (task,) = blind.create_tasks(interaction_ids=[interaction.pk], kind=ReviewTask.Kind.AUDIT)
    assert blind.create_tasks(interaction_ids=[interaction.pk], kind="audit") == [task]
    claimed = blind.claim_blind_task(project=project, user=reviewer_rob)
    assert claimed == task
    blind.answer_blind_task(task=claimed, user=reviewer_rob, label_class="Synergistic")
    label = Label.objects.get(interaction=interaction)
    assert (label.source, label.label_class, label.author) == ("audit", "Synergistic", reviewer_rob)
    event = LabelEvent.objects.get(interaction=interaction)
    assert (event.action, event.source, event.predicted_class) == ("audit", "audit", MODEL_SAYS)
    (row,) = list(iter_final_labels(project=project))
    assert row.source == "review" and row.label_source == "audit" and "review" in SOURCES


def test_the_review_page_is_blind_until_the_answer_then_shows_agreement(
    client, reviewed_item, reviewer_rob
):
    client.force_login(reviewer_rob)
    response = client.get(reverse("annotations:review_next", args=[reviewed_item.project_id]))
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "Blind review" in page
    for secret in (MODEL_SAYS + "</strong>", "0.61", "zzz-why-marker", "rita", "rita-first-note"):
        assert secret not in page, secret
    # htmx fragment too
    fragment = client.get(
        reverse("annotations:review_item", args=[reviewed_item.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Blind review" in fragment and "rita-first-note" not in fragment
    assert "zzz-why-marker" not in fragment
    # Accepting the model's answer is refused while blind.
    url = reverse("annotations:review_action", args=[reviewed_item.pk])
    assert client.post(url, {"action": "accept", "version": ""}).status_code == 422
    response = client.post(
        url, {"action": "label", "label_class": "Antagonistic", "version": ""}, follow=True
    )
    text = response.content.decode()
    assert "differs from the earlier answer" in text and "agrees with the model" in text
    after = client.get(reverse("annotations:review_item", args=[reviewed_item.pk])).content
    assert b"Blind answers" in after and b"rita-first-note" in after
    # The first label was not overwritten through the ordinary form.
    assert Label.objects.get(interaction=reviewed_item).label_class == "Synergistic"


def test_the_api_hides_label_prediction_and_refuses_label_writes_while_blind(
    reviewed_item, reviewer_rob
):
    api = _api(reviewer_rob)
    project = reviewed_item.project
    response = api.post(f"/api/projects/{project.pk}/queue/next/", {}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["blind"] is True and body["interaction"]["label"] is None
    assert "rita" not in response.content.decode()
    task_id = body["blind_task"]["id"]
    detail = api.get(f"/api/interactions/{reviewed_item.pk}/").json()
    assert detail["label"] is None
    assert api.get("/api/predictions/").json()["results"] == []
    assert api.get("/api/labels/").json()["results"] == []
    assert api.get("/api/interactions/", {"label_class": "Synergistic"}).json()["results"] == []
    listed = api.get(f"/api/projects/{project.pk}/queue/").json()
    assert reviewed_item.pk not in [row["interaction"]["id"] for row in listed]
    label = Label.objects.get(interaction=reviewed_item)
    write = api.patch(
        f"/api/labels/{label.pk}/", {"label_class": "Antagonistic", "version": label.version}
    )
    assert write.status_code in (404, 409)
    tasks = api.get("/api/review-tasks/").json()["results"]
    assert [t["id"] for t in tasks] == [task_id] and tasks[0]["first_class"] == ""
    answer = api.post(
        f"/api/review-tasks/{task_id}/answer/", {"label_class": "Synergistic"}, format="json"
    )
    assert answer.status_code == 200 and answer.json()["agrees_with_first"] is True
    again = api.post(
        f"/api/review-tasks/{task_id}/answer/", {"label_class": "Synergistic"}, format="json"
    )
    assert again.status_code == 409
    assert api.get(f"/api/interactions/{reviewed_item.pk}/").json()["label"] is not None
    bad = api.post(f"/api/review-tasks/{task_id}/answer/", {"status": "maybe"}, format="json")
    assert bad.status_code == 400


def test_the_api_answer_rejects_a_class_outside_the_project(reviewed_item, reviewer_rob):
    api = _api(reviewer_rob)
    task = blind.claim_blind_task(project=reviewed_item.project, user=reviewer_rob)
    response = api.post(
        f"/api/review-tasks/{task.pk}/answer/", {"label_class": "Neutral"}, format="json"
    )
    assert response.status_code == 400 and "Neutral" in response.json()["detail"]
