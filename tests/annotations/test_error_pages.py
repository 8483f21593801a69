"""With DEBUG off (production), 404 and 500 are the app's own pages, not Django's."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import path


def _boom(request):
    raise RuntimeError("a bug")


urlpatterns = [path("boom/", _boom)]


@pytest.mark.urls("tests.annotations.test_error_pages")
def test_a_server_error_shows_the_apps_500_page(settings, db):
    settings.DEBUG = False
    response = Client(raise_request_exception=False).get("/boom/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "Something went wrong on our side" in body and "start page" in body
    assert "Traceback" not in body and "RuntimeError" not in body


def test_a_missing_page_shows_the_apps_404_page(settings, client, reviewer_rita):
    settings.DEBUG = False
    client.force_login(reviewer_rita)
    response = client.get("/projects/999999/queue/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "This page does not exist, or it belongs to a project you cannot see." in body
    assert "ddi-curate" in body
