"""Issue 18, point 4: API tokens are stored hashed (knox), rotate at each login, expire after
DDI_API_TOKEN_TTL_HOURS, are revoked by a password change, by logging out of the web app and
on the account page (401 afterwards); tokens from before knox were moved over hashed."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from annotations.tokens import issue_token

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
    stored = AuthToken.objects.get(user=reviewer_rita)
    lifetime = stored.expiry - stored.created
    assert abs(lifetime - timedelta(hours=settings.DDI_API_TOKEN_TTL_HOURS)) < timedelta(seconds=5)
    AuthToken.objects.filter(user=reviewer_rita).update(
        expiry=timezone.now() - timedelta(minutes=1)
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = client.get("/api/projects/")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    assert not AuthToken.objects.filter(user=reviewer_rita).exists()


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


def test_the_database_holds_a_digest_never_the_key(reviewer_rita):
    token = _login()
    stored = AuthToken.objects.get(user=reviewer_rita)
    assert len(token) == 64
    assert stored.digest != token and token not in stored.digest
    assert stored.token_key == token[:15]  # the shown prefix, not enough to authenticate
    assert _status(token[:15]) == 401


def test_a_revoked_token_answers_401_on_the_account_page_flow(reviewer_rita, reviewer_rob):
    token = _login()
    other = issue_token(reviewer_rob)
    web = Client()
    web.force_login(reviewer_rita)
    page = web.get(reverse("annotations:account_tokens")).content.decode()
    assert token[:15] in page and token not in page and other[:15] not in page
    # Rob's prefix is not Rita's to revoke: nothing happens to his token.
    web.post(reverse("annotations:account_token_revoke"), {"token_key": other[:15]})
    assert _status(other) == 200
    response = web.post(reverse("annotations:account_token_revoke"), {"token_key": token[:15]})
    assert response.status_code == 302
    assert "revoked" in web.get(response.url).content.decode()
    assert _status(token) == 401


def test_the_revoke_form_needs_the_csrf_token(reviewer_rita):
    token = _login()
    web = Client(enforce_csrf_checks=True)
    web.force_login(reviewer_rita)
    response = web.post(reverse("annotations:account_token_revoke"), {"token_key": token[:15]})
    assert response.status_code == 403
    assert _status(token) == 200


def test_a_plain_token_from_before_knox_is_moved_over_hashed(reviewer_rita):
    """Migration 0007: DRF's plain-text rows become digests that still authenticate."""
    migration = __import__(
        "annotations.migrations.0007_move_plain_tokens_to_knox", fromlist=["move_tokens"]
    )
    old_key = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, user_id integer, "
            "created timestamp with time zone)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)",
            [old_key, reviewer_rita.pk, timezone.now() - timedelta(hours=1)],
        )
    # move_tokens reads only schema_editor.connection (a real schema editor cannot open inside
    # the test's transaction on SQLite).
    migration.move_tokens(apps, SimpleNamespace(connection=connection))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone() == (0,)  # the plain keys are gone
    stored = AuthToken.objects.get(user=reviewer_rita)
    assert stored.digest != old_key and stored.token_key == old_key[:15]
    assert _status(old_key) == 200  # the client keeps working until the old token's expiry
