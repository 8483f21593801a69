"""The admin's loop in Chromium: start a retrain with the form exactly as it comes, watch its
progress move live while a real Celery worker trains the tiny model, read the promotion
decision, set a nightly schedule on the Schedule page (found in django-celery-beat), and see the
periodic tasks in /admin/. Without a worker, the run page says that nothing will take the run."""

from __future__ import annotations

import json
import time

import pytest
from django_celery_beat.models import PeriodicTask

from annotations.models import Run
from annotations.services.jobs.schedules import SCHEDULED_RETRAIN_TASK
from tests.harness.data import make_interactions, seed_labels

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

FINISHED = ("succeeded", "failed", "cancelled")


def _start_as_prefilled(page):
    page.get_by_role("link", name="Training").click()
    epochs = page.get_by_label("Epochs")
    assert epochs.input_value() == "" and epochs.get_attribute("placeholder") == "12"
    assert page.get_by_label("Learning rate").get_attribute("placeholder") == "0.001"
    page.get_by_role("button", name="Start").click()  # the form exactly as pre-filled
    page.wait_for_url("**/runs/*/")
    run = Run.objects.get(kind=Run.Kind.RETRAIN)
    assert run.params == {"force_promote": False}
    return run


def _watch(page, deadline_s: float) -> list[tuple[str, str]]:
    """(status line, bar value) each time the page's run status changes, until it finishes.

    Read from the page the browser shows (htmx polls the run every second), never the database.
    """
    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        status = page.locator("#run-status")
        line = " ".join(status.locator("label").first.inner_text().split())
        value = status.locator("progress").get_attribute("value") or ""
        if not seen or seen[-1] != (line, value):
            seen.append((line, value))
        if status.get_attribute("data-state") in FINISHED:
            break
        time.sleep(0.15)
    return seen


def test_admin_retrains_as_prefilled_watches_progress_reads_the_decision_and_schedules(
    login, live_server, project, admin_ada, celery_worker, artifacts_dir
):
    seed_labels(make_interactions(project, 36))
    admin_ada.is_staff = True
    admin_ada.save()
    page = login(admin_ada)

    # (The test's worker listens on a private filesystem broker, which answers no Celery ping,
    # so the page's "no worker" note may show here; the second test covers it.)
    run = _start_as_prefilled(page)
    seen = _watch(page, deadline_s=300)
    run.refresh_from_db()
    log = celery_worker.log_path.read_text(errors="replace")[-3000:]
    assert run.state == Run.State.SUCCEEDED, f"{run.state}: {run.error}\n{log}"
    running = [(line, value) for line, value in seen if "Running" in line]
    # Live: while it ran, the page showed the phase and the bar at several different points.
    assert len(running) >= 2, (seen, log)
    assert len({value for _, value in running}) >= 2, seen
    assert any("%" in line and "·" in line for line, _ in running), seen
    assert seen[-1][1] == "100"
    page.screenshot(path=str(artifacts_dir / "admin_run_done.png"), full_page=True)
    decision = " ".join(page.locator("#run-status").inner_text().split())
    assert "Promotion:" in decision and "no decision recorded" not in decision, decision

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


def test_without_a_worker_the_run_page_says_nothing_will_take_the_run(
    login, live_server, project, admin_ada
):
    page = login(admin_ada)
    _start_as_prefilled(page)
    # No worker runs in this test: the page says so, with the command that would take the run.
    warning = page.locator("#no-worker")
    assert "No running worker consumes the 'training' queue" in warning.inner_text()
    assert "-Q default,training,inference" in warning.inner_text()
