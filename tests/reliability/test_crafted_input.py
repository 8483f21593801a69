"""Issue 18, point 5: crafted input answers 400 with a message (or is read safely), never 500.

JSONL uploads nested 100,000 deep or holding a 5,000-digit integer (API and import page), a
queue cursor past 64 bits, undo with a non-numeric `current`, and a `filters` value with CR/LF.
"""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from annotations.models import Label
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory

pytestmark = pytest.mark.django_db

CRAFTED_JSONL = {
    "nested.jsonl": (b"[" * 100_000 + b"\n", "nested too deeply"),
    "long_int.jsonl": (b'{"Drug 1": ' + b"9" * 5000 + b"}\n", "invalid JSON"),
}


@pytest.fixture
def item(project):
    version = ModelVersionFactory(project=project, is_active=True)
    interaction = InteractionFactory(project=project)
    PredictionFactory(interaction=interaction, model_version=version)
    return interaction


@pytest.mark.parametrize("name", sorted(CRAFTED_JSONL))
def test_crafted_jsonl_is_a_400_with_a_message_at_the_api(project, curator_carl, name):
    content, needle = CRAFTED_JSONL[name]
    client = APIClient()
    client.force_authenticate(curator_carl)
    response = client.post(
        reverse("api-project-imports", args=[project.pk]),
        {"file": SimpleUploadedFile(name, content)},
        format="multipart",
    )
    assert response.status_code == 400, response.content[:300]
    assert needle in response.content.decode()


@pytest.mark.parametrize("name", sorted(CRAFTED_JSONL))
def test_crafted_jsonl_gets_a_message_on_the_import_page(client, project, curator_carl, name):
    content, needle = CRAFTED_JSONL[name]
    client.force_login(curator_carl)
    response = client.post(
        reverse("annotations:imports", args=[project.pk]),
        {"file": SimpleUploadedFile(name, content)},
        follow=True,
    )
    assert response.status_code in (200, 400, 422)
    assert needle in response.content.decode()


@pytest.mark.parametrize(
    "cursor", ["0.5:0.1:99999999999999999999999", "id:99999999999999999999999", "nan:inf:3"]
)
def test_an_out_of_range_queue_cursor_reads_as_from_the_start(
    client, reviewer_rita, project, item, cursor
):
    client.force_login(reviewer_rita)
    response = client.get(reverse("annotations:queue", args=[project.pk]), {"after": cursor})
    assert response.status_code == 200
    assert item.drug_a in response.content.decode()


def test_undo_with_a_non_numeric_current_is_a_400_with_a_message(
    client, reviewer_rita, project, item
):
    client.force_login(reviewer_rita)
    response = client.post(
        reverse("annotations:review_undo", args=[project.pk]), {"current": "abc"}
    )
    assert response.status_code == 400
    assert "current must be an interaction id" in response.content.decode()


def test_filters_with_cr_lf_are_re_encoded_not_a_500(client, reviewer_rita, project, item):
    client.force_login(reviewer_rita)
    response = client.post(
        reverse("annotations:review_action", args=[item.pk]),
        {
            "action": "accept",
            "version": "",
            "filters": "predicted_class=Synergistic\r\nSet-Cookie: x=1",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200, response.content[:300]
    assert "\n" not in response.get("HX-Push-Url", "")
    assert "Set-Cookie" not in response.headers.get("HX-Push-Url", "")
    assert Label.objects.filter(interaction=item).exists()
