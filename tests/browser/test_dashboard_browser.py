"""The dashboard in Chromium: empty charts say "No data yet"; no console errors."""

from __future__ import annotations

import pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_an_empty_project_s_charts_say_no_data_yet(login, live_server, project, reviewer_rita):
    page = login(reviewer_rita)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    page.wait_for_load_state("networkidle")
    assert page.locator(".chart .no-data").count() == 4
    assert page.locator("#chart-distribution").count() == 0
    assert "labeled by a reviewer" in page.inner_text(".counts")
    assert errors == []
