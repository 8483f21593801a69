"""Issue 18, point 4: API tokens rotate at each login, expire after DDI_API_TOKEN_TTL_HOURS,
and are revoked by a password change and by logging out of the web app (401 afterwards)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_throttles")]

PASSWORD = "correct horse battery staple"


def _login(username="rita") -> str:
    response = APIClient().post("/api/auth/token/", {"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.content
    return response.json()["token"]


def _status(token: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get("/api/projects/").status_code


def test_logging_in_again_rotates_the_token(reviewer_rita):
    first = _login()
    second = _login()
    assert first != second
    assert _status(first) == 401
    assert _status(second) == 200


def test_an_expired_token_answers_401_and_is_deleted(reviewer_rita, settings):
    token = _login()
    Token.objects.filter(key=token).update(
        created=timezone.now() - timedelta(hours=settings.DDI_API_TOKEN_TTL_HOURS, minutes=1)
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = client.get("/api/projects/")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    assert not Token.objects.filter(key=token).exists()


def test_a_password_change_revokes_the_token(reviewer_rita):
    token = _login()
    reviewer_rita.set_password("another long passphrase 42")
    reviewer_rita.save()
    assert _status(token) == 401


def test_saving_the_user_without_a_new_password_keeps_the_token(reviewer_rita):
    token = _login()
    reviewer_rita.first_name = "Rita"
    reviewer_rita.save()
    assert _status(token) == 200


def test_logging_out_of_the_web_app_revokes_the_token(reviewer_rita):
    token = _login()
    web = Client()
    web.force_login(reviewer_rita)
    assert web.post("/accounts/logout/").status_code == 302
    assert _status(token) == 401
