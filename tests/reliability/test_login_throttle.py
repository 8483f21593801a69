"""Issue 18, point 2: login brute force is throttled on every login path.

After LOGIN_FAILURE_LIMIT wrong passwords (django-axes, by username and by client address),
/api/auth/token/, /accounts/login/ and /admin/login/ answer 429, the right password included,
whatever X-Forwarded-For says (it is not trusted without NUM_PROXIES).
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_throttles")]

PASSWORD = "correct horse battery staple"


def _token(client, username, password, n):
    return client.post(
        "/api/auth/token/",
        {"username": username, "password": password},
        HTTP_X_FORWARDED_FOR=f"10.0.{n // 250}.{n % 250}",
    )


def _form(client, path, username, password, n):
    return client.post(
        path,
        {"username": username, "password": password},
        HTTP_X_FORWARDED_FOR=f"10.1.{n // 250}.{n % 250}",
    )


def test_token_login_locks_out_by_username_whatever_x_forwarded_for_says(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "login": "1000/min",
        },
    }
    UserFactory(username="victim")
    client = APIClient()
    limit = settings.AXES_FAILURE_LIMIT
    statuses = [_token(client, "victim", f"guess{n}", n).status_code for n in range(limit + 2)]
    assert set(statuses[: limit - 1]) == {400}
    assert statuses[-1] == 429
    assert _token(client, "victim", PASSWORD, 999).status_code == 429


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_form_logins_lock_out_after_the_limit(path):
    UserFactory(username="victim", is_staff=True)
    client = Client()
    limit = settings.AXES_FAILURE_LIMIT
    statuses = [_form(client, path, "victim", f"guess{n}", n).status_code for n in range(limit + 2)]
    assert set(statuses[: limit - 1]) == {200}  # the form again, with its error
    assert statuses[-1] == 429
    locked = _form(client, path, "victim", PASSWORD, 999)
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_one_address_spraying_many_usernames_is_locked_out_too():
    client = Client()
    limit = settings.AXES_FAILURE_LIMIT
    statuses = [
        _form(client, "/accounts/login/", f"user{n}", "guess", n).status_code
        for n in range(limit + 2)
    ]
    assert statuses[-1] == 429


def test_a_correct_login_under_the_limit_still_works():
    UserFactory(username="fine")
    client = Client()
    for n in range(3):
        _form(client, "/accounts/login/", "fine", "wrong", n)
    response = _form(client, "/accounts/login/", "fine", PASSWORD, 3)
    assert response.status_code == 302
