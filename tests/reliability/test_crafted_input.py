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


# --- the account page's revoke form and the rule preview's page (issues 18 and 13) -------------

CRAFTED_FORM_VALUES = [
    "",
    "x" * 5000,
    "abc\r\nSet-Cookie: a=b",
    "' OR '1'='1",
    "%00\x00",
    "é" * 40,
    "99999999999999999999999",
    "²",
]


@pytest.mark.parametrize("value", CRAFTED_FORM_VALUES)
def test_a_crafted_token_key_on_the_revoke_form_is_a_message_never_a_500(
    client, reviewer_rita, value
):
    from annotations.tokens import issue_token

    key = issue_token(reviewer_rita)
    client.force_login(reviewer_rita)
    response = client.post(reverse("annotations:account_token_revoke"), {"token_key": value})
    assert response.status_code == 302
    page = client.get(response.url)
    assert "No such token of yours" in page.content.decode()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/projects/").status_code == 200  # nothing was revoked by accident


@pytest.mark.parametrize("value", CRAFTED_FORM_VALUES)
def test_a_crafted_preview_page_number_shows_page_one(client, project, curator_carl, item, value):
    client.force_login(curator_carl)
    form = {
        "name": "x",
        "kind": "regex",
        "field": "blinded",
        "pattern": "anticoagulant",
        "label_class": "Synergistic",
        "priority": "0",
        "action": "preview",
        "page": value,
    }
    response = client.post(reverse("annotations:rule_create", args=[project.pk]), form)
    assert response.status_code == 200
    assert "interaction matches this rule" in response.content.decode()


@pytest.mark.parametrize("value", ["0", "-1", "abc", "9" * 30])
def test_a_crafted_preview_page_is_a_400_at_the_api(project, curator_carl, value):
    api = APIClient()
    api.force_authenticate(curator_carl)
    payload = {"project": project.pk, "pattern": "anticoagulant", "label_class": "Synergistic"}
    response = api.post("/api/rules/preview/", {**payload, "page": value}, format="json")
    assert response.status_code == 400 and "page" in response.json()
