"""Issue 18, point 3: the HTML views are throttled like the API. A reviewer walking item pages
fast gets a 429 page with a message and Retry-After past DDI_WEB_THROTTLE_RATE (THROTTLE_WEB);
other users and the API keep their own budgets. (That a GET claims nothing is
tests/annotations/test_claims_hostile.py.)"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from annotations.models import ReviewClaim
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_throttles")]


@pytest.fixture
def items(project):
    version = ModelVersionFactory(project=project, is_active=True)
    made = [InteractionFactory(project=project) for _ in range(8)]
    for interaction in made:
        PredictionFactory(interaction=interaction, model_version=version)
    return made


@pytest.fixture
def low_rate(settings):
    settings.DDI_WEB_THROTTLE_RATE = "5/min"


def test_walking_item_pages_fast_gets_429_with_a_message_after_the_limit(
    low_rate, reviewer_rita, items
):
    web = Client()
    web.force_login(reviewer_rita)
    codes = [
        web.get(reverse("annotations:review_item", args=[i.pk])).status_code for i in items[:5]
    ]
    assert codes == [200] * 5
    response = web.get(reverse("annotations:review_item", args=[items[5].pk]))
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    body = response.content.decode()
    assert "Too many requests" in body and "5/min" in body and "try again in" in body
    assert not ReviewClaim.objects.exists()  # and none of those GETs claimed anything


def test_each_user_has_their_own_budget_and_the_api_its_own(
    low_rate, reviewer_rita, reviewer_rob, items, project
):
    rita = Client()
    rita.force_login(reviewer_rita)
    for _ in range(6):
        last = rita.get(reverse("annotations:queue", args=[project.pk]))
    assert last.status_code == 429
    rob = Client()
    rob.force_login(reviewer_rob)
    assert rob.get(reverse("annotations:queue", args=[project.pk])).status_code == 200
    api = APIClient()
    api.force_authenticate(reviewer_rita)
    assert api.get("/api/projects/").status_code == 200


def test_an_htmx_fragment_over_the_limit_gets_a_short_429(low_rate, reviewer_rita, project):
    web = Client()
    web.force_login(reviewer_rita)
    url = reverse("annotations:dashboard_runs", args=[project.pk])
    for _ in range(5):
        assert web.get(url, HTTP_HX_REQUEST="true").status_code == 200
    response = web.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 429
    assert response.content.decode().startswith('<p class="msg msg-error" role="alert">')


def test_the_rate_comes_from_settings(settings, reviewer_rita, project):
    settings.DDI_WEB_THROTTLE_RATE = "2/min"
    web = Client()
    web.force_login(reviewer_rita)
    url = reverse("annotations:account_tokens")
    assert [web.get(url).status_code for _ in range(3)] == [200, 200, 429]
