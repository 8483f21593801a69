"""Adjudication: disagreeing answers side by side, the decision as the final label, locking."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotations.models import Adjudication, Label, LabelEvent
from annotations.roles import Role
from annotations.selectors.final_labels import iter_final_labels
from annotations.services import blind, labels
from tests.factories import (
    InteractionFactory,
    ModelVersionFactory,
    PredictionFactory,
    UserFactory,
)


def _disagreement(project, first, second):
    project.second_opinion_rate = 1.0
    project.save()
    version = ModelVersionFactory(project=project, is_active=True)
    interaction = InteractionFactory(project=project)
    PredictionFactory(interaction=interaction, model_version=version, predicted_class="Zmodel")
    labels.record_review(
        interaction=interaction, user=first, label_class="Synergistic", expected_version=None
    )
    task = blind.claim_blind_task(project=project, user=second)
    blind.answer_blind_task(task=task, user=second, label_class="Antagonistic", note="second-note")
    return Adjudication.objects.get(interaction=interaction)


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.django_db
def test_the_queue_shows_both_answers_and_hides_the_model_until_decided(
    project, reviewer_rita, reviewer_rob, curator_carl
):
    adjudication = _disagreement(project, reviewer_rita, reviewer_rob)
    api = _api(curator_carl)
    (row,) = api.get("/api/adjudications/").json()["results"]
    assert {(a["who"], a["label_class"]) for a in row["answers"]} == {
        ("rita", "Synergistic"),
        ("rob", "Antagonistic"),
    }
    assert row["model_class"] is None and "Zmodel" not in str(row)
    detail = api.get(f"/api/adjudications/{adjudication.pk}/")
    version = detail.json()["label_version"]
    assert detail["ETag"] == f'"{version}"'
    decided = api.post(
        f"/api/adjudications/{adjudication.pk}/decide/",
        {"label_class": "Antagonistic", "version": version, "note": "less drug"},
        format="json",
    )
    assert decided.status_code == 200, decided.content
    assert decided.json()["model_class"] == "Zmodel"
    label = Label.objects.get(interaction=adjudication.interaction)
    assert (label.source, label.label_class, label.author) == (
        "adjudication",
        "Antagonistic",
        curator_carl,
    )
    # Every answer stays in the history.
    actions = list(
        LabelEvent.objects.filter(interaction=adjudication.interaction).values_list(
            "action", "actor__username"
        )
    )
    assert actions == [("change", "rita"), ("adjudicate", "carl")]
    (final,) = [
        r for r in iter_final_labels(project=project) if r.interaction_id == label.interaction_id
    ]
    assert final.final_label == "Antagonistic" and final.label_source == "adjudication"
    assert api.get("/api/adjudications/").json()["results"] == []


@pytest.mark.django_db
def test_reviewers_cannot_adjudicate_and_bad_input_is_a_400(
    project, reviewer_rita, reviewer_rob, curator_carl
):
    adjudication = _disagreement(project, reviewer_rita, reviewer_rob)
    url = f"/api/adjudications/{adjudication.pk}/decide/"
    assert _api(reviewer_rita).get("/api/adjudications/").status_code == 403
    assert _api(reviewer_rita).post(url, {"label_class": "Synergistic"}).status_code == 403
    api = _api(curator_carl)
    assert api.post(url, {"label_class": "Neutral", "version": 1}).status_code == 400
    assert api.post(url, {"label_class": "Synergistic"}).status_code == 428
    assert api.get("/api/adjudications/?state=sideways").status_code == 400


@pytest.mark.django_db
def test_a_stale_if_match_is_412_and_a_stale_version_409(
    project, reviewer_rita, reviewer_rob, curator_carl
):
    adjudication = _disagreement(project, reviewer_rita, reviewer_rob)
    cleo = UserFactory(username="cleo", role=Role.CURATOR)
    url = f"/api/adjudications/{adjudication.pk}/decide/"
    version = Label.objects.get(interaction=adjudication.interaction).version
    first = _api(curator_carl).post(
        url, {"label_class": "Synergistic"}, format="json", HTTP_IF_MATCH=f'"{version}"'
    )
    assert first.status_code == 200
    late = _api(cleo).post(
        url, {"label_class": "Antagonistic"}, format="json", HTTP_IF_MATCH=f'"{version}"'
    )
    assert late.status_code == 412
    stale = _api(cleo).post(url, {"label_class": "Antagonistic", "version": version})
    assert stale.status_code == 409
    assert Label.objects.get(interaction=adjudication.interaction).label_class == "Synergistic"
    assert LabelEvent.objects.filter(action="adjudicate").count() == 1


def _again(project, rita, rob):
    interaction = InteractionFactory(project=project)
    PredictionFactory(
        interaction=interaction, model_version=project.model_versions.get(is_active=True)
    )
    labels.record_review(
        interaction=interaction, user=rita, label_class="Synergistic", expected_version=None
    )
    task = blind.claim_blind_task(project=project, user=rob)
    blind.answer_blind_task(task=task, user=rob, label_class="Antagonistic")
    return Adjudication.objects.get(interaction=interaction)
