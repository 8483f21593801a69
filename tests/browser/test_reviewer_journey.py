"""The reviewer's journey in Chromium: ten items with the keyboard, one undone, one flagged."""

from __future__ import annotations

import pytest

from annotations.models import Label, LabelEvent
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def twelve_items(project):
    version = ModelVersionFactory(project=project, is_active=True)
    items = []
    for i in range(12):
        interaction = InteractionFactory(
            project=project,
            drug_a=f"Drugone{i}",
            drug_b=f"Drugtwo{i}",
            description=f"Drugone{i} may increase the sedative activities of Drugtwo{i}.",
            blinded_text=f"DRUG_A may increase the sedative activities ({i}) of DRUG_B.",
        )
        confidence = 0.5 + i / 30
        PredictionFactory(
            interaction=interaction,
            model_version=version,
            predicted_class="Synergistic",
            confidence=confidence,
            margin=2 * confidence - 1,
            probabilities=[confidence, 1 - confidence],
        )
        items.append(interaction)
    return items


def _wait_for_change(page, before: str) -> None:
    page.wait_for_function(
        "before => { const p = document.getElementById('review-pane');"
        " return p && p.dataset.interaction !== before && document.body.dataset.reviewBusy === '0'; }",
        arg=before,
    )


def _press(page, key: str) -> None:
    before = page.locator("#review-pane").get_attribute("data-interaction") or ""
    page.keyboard.press(key)
    _wait_for_change(page, before)


def test_reviewer_reviews_ten_items_with_the_keyboard_undoes_one_and_flags_one(
    login, live_server, project, twelve_items, reviewer_rita
):
    page = login(reviewer_rita)
    page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    for _ in range(10):
        _press(page, "Enter")
    assert Label.objects.filter(author=reviewer_rita).count() == 10

    _press(page, "u")  # the tenth item comes back, unlabeled
    assert Label.objects.filter(author=reviewer_rita).count() == 9
    assert "Undone:" in page.inner_text("#review-pane")

    shown = page.locator("#review-pane").get_attribute("data-interaction")
    page.keyboard.press("f")
    page.keyboard.type("Is the sedation additive or a dose effect?")
    page.get_by_role("button", name="Flag as unclear").click()
    _wait_for_change(page, shown)
    flagged = Label.objects.get(interaction_id=int(shown))
    assert (flagged.status, flagged.note) == (
        "unclear",
        "Is the sedation additive or a dose effect?",
    )
    assert LabelEvent.objects.filter(actor=reviewer_rita, action="undo").count() == 1
