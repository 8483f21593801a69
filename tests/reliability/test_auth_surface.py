"""Issue 18, point 6: only the auth views the app uses are routed (no password reset without
e-mail), and point 2's client address: X-Forwarded-For counts only behind NUM_PROXIES."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django.urls import NoReverseMatch, reverse

from ddi_site.client_ip import client_ip

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/password_reset/",
        "/accounts/password_reset/done/",
        "/accounts/reset/MQ/set-password/",
        "/accounts/password_change/",
    ],
)
def test_password_reset_and_change_pages_are_not_routed(client, path):
    assert client.get(path).status_code == 404
    assert client.post(path, {"email": "rita@example.org"}).status_code == 404


@pytest.mark.parametrize("name", ["password_reset", "password_change", "password_reset_done"])
def test_no_reset_url_name_exists(name):
    with pytest.raises(NoReverseMatch):
        reverse(name)


def test_login_and_logout_still_work(client, reviewer_rita):
    assert client.get(reverse("login")).status_code == 200
    response = client.post(
        reverse("login"), {"username": "rita", "password": "correct horse battery staple"}
    )
    assert response.status_code == 302
    assert client.post(reverse("logout")).status_code == 302
    assert "_auth_user_id" not in client.session


def test_x_forwarded_for_is_ignored_without_proxies(settings):
    settings.NUM_PROXIES = 0
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.9", HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert client_ip(request) == "192.0.2.9"


def test_x_forwarded_for_counts_only_the_declared_proxies(settings):
    settings.NUM_PROXIES = 1
    request = RequestFactory().get(
        "/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.5"
    )
    assert client_ip(request) == "203.0.113.5"  # what the one trusted proxy saw, not the spoof
