"""Issue 18, point 3: one reviewer cannot lock the whole queue.

Opening an item page does not claim it (only the queue hands items out), and one reviewer
holds at most DDI_MAX_CLAIMS_PER_USER leases: taking another releases the oldest.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotations.models import ReviewClaim
from annotations.services import labels
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def unlabeled(project):
    version = ModelVersionFactory(project=project, is_active=True)
    made = []
    for i in range(6):
        interaction = InteractionFactory(project=project, blinded_text=f"DRUG_A p{i} DRUG_B.")
        PredictionFactory(interaction=interaction, model_version=version)
        made.append(interaction)
    return made


def test_walking_every_item_page_claims_nothing_and_leaves_the_queue_open(
    client, reviewer_rita, reviewer_rob, project, unlabeled
):
    client.force_login(reviewer_rita)
    for interaction in unlabeled:
        for _ in range(2):
            response = client.get(reverse("annotations:review_item", args=[interaction.pk]))
            assert response.status_code == 200
    assert not ReviewClaim.objects.exists()

    api = APIClient()
    api.force_authenticate(reviewer_rob)
    response = api.post(f"/api/projects/{project.pk}/queue/next/")
    assert response.status_code == 200


def test_an_item_page_still_says_when_someone_else_holds_it(
    client, reviewer_rita, reviewer_rob, unlabeled
):
    assert labels.claim_interaction(interaction_id=unlabeled[0].pk, user=reviewer_rob)
    client.force_login(reviewer_rita)
    body = client.get(reverse("annotations:review_item", args=[unlabeled[0].pk])).content
    assert b"Another reviewer has this item open" in body
    body = client.get(reverse("annotations:review_item", args=[unlabeled[1].pk])).content
    assert b"Another reviewer has this item open" not in body


def test_one_reviewer_holds_at_most_the_configured_number_of_claims(reviewer_rita, unlabeled):
    for interaction in unlabeled:
        assert labels.claim_interaction(interaction_id=interaction.pk, user=reviewer_rita)
    held = set(
        ReviewClaim.objects.filter(user=reviewer_rita).values_list("interaction_id", flat=True)
    )
    assert len(held) == labels.MAX_CLAIMS_PER_USER
    assert unlabeled[-1].pk in held


def test_asking_the_queue_again_and_again_does_not_pile_up_claims(
    reviewer_rita, reviewer_rob, project, unlabeled
):
    rita = APIClient()
    rita.force_authenticate(reviewer_rita)
    for _ in range(len(unlabeled)):
        rita.post(f"/api/projects/{project.pk}/queue/next/")
    assert ReviewClaim.objects.filter(user=reviewer_rita).count() <= labels.MAX_CLAIMS_PER_USER
    rob = APIClient()
    rob.force_authenticate(reviewer_rob)
    assert rob.post(f"/api/projects/{project.pk}/queue/next/").status_code == 200
