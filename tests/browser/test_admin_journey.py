"""The admin's loop in Chromium: start a retrain with the form exactly as it comes, read that it
waits for a worker that consumes its queue, set a nightly schedule on the Schedule page (found
in django-celery-beat), and see the periodic tasks in /admin/."""

from __future__ import annotations

import json

import pytest
from django_celery_beat.models import PeriodicTask

from annotations.models import Run
from annotations.services.scheduling import SCHEDULED_RETRAIN_TASK

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_admin_starts_a_default_retrain_schedules_it_nightly_and_finds_it_in_the_admin(
    login, live_server, project, admin_ada
):
    admin_ada.is_staff = True
    admin_ada.save()
    page = login(admin_ada)

    page.get_by_role("link", name="Training").click()
    epochs = page.get_by_label("Epochs")
    assert epochs.input_value() == "" and epochs.get_attribute("placeholder") == "12"
    assert page.get_by_label("Learning rate").get_attribute("placeholder") == "0.001"
    page.get_by_role("button", name="Start").click()  # the form exactly as pre-filled
    page.wait_for_url("**/runs/*/")
    run = Run.objects.get()
    assert (run.kind, run.params) == (Run.Kind.RETRAIN, {"force_promote": False})
    # No worker runs in this test: the page says so, with the command that would take the run.
    warning = page.locator("#no-worker")
    assert "No running worker consumes the 'training' queue" in warning.inner_text()
    assert "-Q default,training,inference" in warning.inner_text()

    page.get_by_role("link", name="Schedule").click()
    page.get_by_label("Every night at").check()
    page.get_by_label("Time of day").fill("03:15")
    page.get_by_label("Also train on pseudo-labels above confidence").fill("0.95")
    page.get_by_role("button", name="Save schedule").click()
    page.wait_for_selector("text=Schedule saved.")
    summary = page.locator("#schedule-summary").inner_text()
    assert "Every night at 03:15 (UTC), also on pseudo-labels above 0.95" in " ".join(
        summary.split()
    )
    task = PeriodicTask.objects.get(task=SCHEDULED_RETRAIN_TASK)
    assert task.enabled and json.loads(task.args) == [project.pk]
    assert (task.crontab.hour, task.crontab.minute) == ("3", "15")

    page.goto(f"{live_server.url}/admin/")
    page.get_by_role("link", name="Periodic tasks", exact=True).first.click()
    page.wait_for_selector(f"text={task.name}")
