"""The review app in a real browser: keyboard review, a conflict between two reviewers, and an
admin retrain whose progress bar moves while a real Celery worker trains. Screenshots of the
queue, an item and the dashboard go to tests/artifacts/."""

from __future__ import annotations

import time

import pytest

from annotations.models import Label, LabelEvent, Run
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory
from tests.harness.data import make_interactions, seed_labels

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.slow,
    # Transactional (the live server is another thread); restore the migrations' roles/project.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def queue_items(project):
    """Six interactions with predictions of an active model, most uncertain first."""
    version = ModelVersionFactory(
        project=project, is_active=True, metrics={"accuracy": 0.81, "macro_f1": 0.79}
    )
    items = []
    for i, confidence in enumerate((0.51, 0.56, 0.62, 0.7, 0.83, 0.97)):
        interaction = InteractionFactory(
            project=project,
            drug_a=f"Warfarin{i}",
            drug_b=f"Fluconazole{i}",
            description=(
                f"The metabolism of Warfarin{i} can be decreased when combined with Fluconazole{i}."
            ),
            blinded_text=f"The metabolism of DRUG_A can be decreased ({i}) with DRUG_B.",
            source_file="drugbank.csv",
        )
        PredictionFactory(
            interaction=interaction,
            model_version=version,
            predicted_class="Antagonistic" if i % 2 else "Synergistic",
            confidence=confidence,
            margin=2 * confidence - 1,
            probabilities=[confidence, 1 - confidence]
            if i % 2 == 0
            else [1 - confidence, confidence],
        )
        items.append(interaction)
    return items


def _pane_id(page) -> str:
    return page.locator("#review-pane").get_attribute("data-interaction") or ""


def _press_and_wait_for_next(page, key: str) -> None:
    before = _pane_id(page)
    page.keyboard.press(key)
    page.wait_for_function(
        "before => { const p = document.getElementById('review-pane');"
        " return p && p.dataset.interaction !== before && document.body.dataset.reviewBusy === '0'; }",
        arg=before,
    )


def test_reviewer_reviews_three_items_with_the_keyboard_only(
    login, live_server, project, queue_items, reviewer_rita, artifacts_dir
):
    page = login(reviewer_rita)
    page.goto(f"{live_server.url}/projects/{project.pk}/queue/")
    page.screenshot(path=str(artifacts_dir / "queue.png"), full_page=True)
    assert page.locator("#queue-rows tr").first.inner_text().startswith("Warfarin0")

    page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    assert _pane_id(page) == str(queue_items[0].pk)
    page.screenshot(path=str(artifacts_dir / "item.png"), full_page=True)
    # A marker on window survives only if no full page load happens between actions.
    page.evaluate("window.__noReload = true")

    page.keyboard.press("?")
    assert page.locator("#keys-help").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#keys-help").is_visible()

    _press_and_wait_for_next(page, "Enter")  # accept "Synergistic" for item 0
    assert "Saved Synergistic for Warfarin0 + Fluconazole0." in page.inner_text("#review-pane")
    _press_and_wait_for_next(page, "1")  # item 1 predicted Antagonistic: choose class 1
    _press_and_wait_for_next(page, "s")  # skip item 2
    assert page.evaluate("window.__noReload") is True
    assert _pane_id(page) == str(queue_items[3].pk)
    assert page.url.endswith(f"/interactions/{queue_items[3].pk}/")

    by_rita = dict(
        Label.objects.filter(author=reviewer_rita).values_list("interaction_id", "label_class")
    )
    assert by_rita == {queue_items[0].pk: "Synergistic", queue_items[1].pk: "Synergistic"}

    _press_and_wait_for_next(page, "u")  # undo brings item 1 back, unlabeled
    assert _pane_id(page) == str(queue_items[1].pk)
    assert not Label.objects.filter(interaction=queue_items[1]).exists()
    assert LabelEvent.objects.filter(actor=reviewer_rita, action="undo").count() == 1


def test_second_reviewer_gets_a_conflict_instead_of_overwriting(
    login, live_server, queue_items, reviewer_rita, reviewer_rob, artifacts_dir
):
    item_url = f"{live_server.url}/interactions/{queue_items[0].pk}/"
    rita = login(reviewer_rita)
    # The queue hands Rita the most uncertain item (opening a page by URL claims nothing).
    rita.goto(f"{live_server.url}/projects/{queue_items[0].project_id}/review/")
    assert rita.url == item_url
    rob = login(reviewer_rob, width=820, height=1180)  # Rob works on a tablet
    rob.goto(item_url)
    assert "Another reviewer has this item open" in rob.inner_text("#review-pane")

    rob.wait_for_function("() => document.body.dataset.reviewBusy === '0'")
    _press_and_wait_for_next(rita, "2")  # Rita saves Antagonistic first
    rob.keyboard.press("1")  # Rob's page still shows "no label": stale
    conflict = rob.locator(".msg-conflict")
    conflict.wait_for()
    text = conflict.inner_text()
    assert "Not saved: conflict." in text
    assert "rita saved 'Antagonistic'" in text
    rob.screenshot(path=str(artifacts_dir / "conflict.png"), full_page=True)
    label = Label.objects.get(interaction=queue_items[0])
    assert (label.label_class, label.author_id, label.version) == (
        "Antagonistic",
        reviewer_rita.pk,
        1,
    )
    # The conflict view is fresh: Rob now sees Rita's label and can decide again.
    assert "Antagonistic" in rob.inner_text("section.current")


def test_admin_starts_a_retrain_and_watches_the_progress_bar_move(
    login, live_server, project, admin_ada, celery_worker, artifacts_dir
):
    interactions = make_interactions(project, 60)
    seed_labels(interactions)
    page = login(admin_ada)
    page.goto(f"{live_server.url}/projects/{project.pk}/runs/")
    page.get_by_label("Job", exact=True).select_option("retrain")
    page.get_by_label("Epochs", exact=True).fill("12")
    page.get_by_label("LoRA rank", exact=True).fill("4")
    page.get_by_label("Learning rate", exact=True).fill("0.001")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/runs/*/")
    run = Run.objects.get(kind=Run.Kind.RETRAIN)

    seen: list[int] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        bar = page.locator("#run-status progress")
        value = bar.get_attribute("value")
        if value is not None and (not seen or seen[-1] != int(value)):
            seen.append(int(value))
            if len(seen) == 2:
                page.screenshot(path=str(artifacts_dir / "run_progress.png"), full_page=True)
        state = page.locator("#run-status").get_attribute("data-state")
        if state in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.2)
    run.refresh_from_db()
    log = celery_worker.log_path.read_text(errors="replace")[-3000:]
    assert run.state == Run.State.SUCCEEDED, f"{run.state}: {run.error}\n{log}"
    assert len(seen) >= 2 and seen[-1] > seen[0], (seen, log)
    assert "Promotion:" in page.inner_text("#run-status")
    page.screenshot(path=str(artifacts_dir / "run_done.png"), full_page=True)

    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    charts = ["chart-distribution", "chart-histogram", "chart-metrics"]
    drawn = page.evaluate(
        "ids => ids.filter(id => window.Chart && Chart.getChart(id) !== undefined)", charts
    )
    assert drawn == charts, errors
    # Nobody reviewed yet: the throughput chart says so instead of drawing empty axes.
    assert page.locator("#chart-throughput").count() == 0
    assert page.locator(".chart .no-data").count() == 1
    assert page.locator("#count-interactions").inner_text() == "60"
    page.screenshot(path=str(artifacts_dir / "dashboard.png"), full_page=True)
