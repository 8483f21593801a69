"""One whole team-review round in Chromium: two reviewers and a curator.

Rita reviews three items (every reviewed item gets a second opinion in this project); Rob's
queue hands him the three blind, with no model answer and no first answer on the page; he agrees
on one, disagrees on two; the curator adjudicates both from the queue (answers side by side, the
model's only after the decision), and the dashboard shows the agreement.
"""

from __future__ import annotations

import pytest

from annotations.models import Adjudication, Label, ReviewTask
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

MODEL_MARK = "Antagonistic"  # what the model predicts for every item here


@pytest.fixture
def three_items(project):
    project.second_opinion_rate = 1.0
    project.save()
    version = ModelVersionFactory(project=project, is_active=True)
    items = []
    for i in range(3):
        interaction = InteractionFactory(
            project=project,
            drug_a=f"Alphadrug{i}",
            drug_b=f"Betadrug{i}",
            description=f"Alphadrug{i} can decrease the excretion rate of Betadrug{i}.",
            blinded_text=f"DRUG_A can decrease the excretion rate ({i}) of DRUG_B.",
        )
        PredictionFactory(
            interaction=interaction,
            model_version=version,
            predicted_class=MODEL_MARK,
            confidence=0.6 + i / 100,
            margin=0.2,
            probabilities=[0.4, 0.6],
            signals={"why": ["zzz-model-why"]},
        )
        items.append(interaction)
    return items


def _current(page) -> str:
    return page.locator("#review-pane").get_attribute("data-interaction") or ""


def _press_and_wait(page, key: str) -> None:
    before = _current(page)
    page.keyboard.press(key)
    page.wait_for_function(
        "before => { const p = document.getElementById('review-pane');"
        " return p && (p.dataset.interaction !== before || !p.dataset.interaction)"
        " && document.body.dataset.reviewBusy === '0'; }",
        arg=before,
    )


def test_two_reviewers_and_a_curator_do_a_whole_round(
    login, live_server, project, three_items, reviewer_rita, reviewer_rob, curator_carl
):
    # 1. Rita labels all three "Synergistic" (key 1).
    rita = login(reviewer_rita)
    rita.goto(f"{live_server.url}/projects/{project.pk}/review/")
    for _ in range(3):
        _press_and_wait(rita, "1")
    assert Label.objects.filter(author=reviewer_rita, label_class="Synergistic").count() == 3
    assert ReviewTask.objects.filter(kind="second_opinion", answered_at=None).count() == 3
    # Her own items are never handed back to her blind.
    assert "Blind review" not in rita.inner_text("body")

    # 2. Rob gets them blind: banner, no model, no first answer, no history.
    rob = login(reviewer_rob)
    rob.goto(f"{live_server.url}/projects/{project.pk}/review/")
    answers = {}
    for index in range(3):
        pane = rob.inner_text("#review-pane")
        assert "Blind review" in pane
        for secret in ("zzz-model-why", "rita", "Accept", "Confidence"):
            assert secret not in pane, secret
        assert rob.locator("#history").count() == 0
        key = "1" if index == 0 else "2"  # agree on the first, disagree on the others
        answers[int(_current(rob))] = key
        _press_and_wait(rob, key)
        notice = rob.inner_text("#review-pane")
        assert ("agrees with the earlier answer" if key == "1" else "differs from") in notice
    assert ReviewTask.objects.filter(answered_by=reviewer_rob).count() == 3
    # The first labels were not overwritten.
    assert Label.objects.filter(author=reviewer_rita, label_class="Synergistic").count() == 3

    # 3. The curator adjudicates both disagreements.
    carl = login(curator_carl)
    carl.goto(f"{live_server.url}/projects/{project.pk}/adjudication/")
    assert carl.locator("#adjudication-table tbody tr").count() == 2
    for _ in range(2):
        carl.locator("#adjudication-table tbody tr a").first.click()
        answers_box = carl.inner_text("#answers")
        assert "rita" in answers_box and "rob" in answers_box
        assert "Synergistic" in answers_box and "Antagonistic" in answers_box
        assert carl.locator("#model-class").count() == 0  # the model only after deciding
        carl.get_by_label("Note (why)").fill("less excretion means more drug")
        carl.get_by_role("button", name="Synergistic").click()
        carl.wait_for_selector("#model-class")
        assert MODEL_MARK in carl.inner_text("#model-class")
        carl.goto(f"{live_server.url}/projects/{project.pk}/adjudication/")
    assert "Nothing to adjudicate" in carl.inner_text("main")
    assert Adjudication.objects.filter(decided_by=curator_carl).count() == 2
    assert Label.objects.filter(source="adjudication", label_class="Synergistic").count() == 2

    # 4. The dashboard reports the agreement (kappa for the rita/rob pair, with its warning).
    carl.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    table = carl.inner_text("#kappa-table")
    assert "rita · rob" in table and "only 3 items" in table
    assert "rita" in carl.inner_text("#team-agreement")
