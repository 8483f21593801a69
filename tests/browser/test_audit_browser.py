"""A reviewer answers five blind audit items in Chromium and never sees the model's answer first."""

from __future__ import annotations

import pytest

from annotations.models import AuditItem, Label
from annotations.selectors.audit import get_audit_summary
from annotations.services import audit as audit_service
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SECRETS = ("0.97", "zzz-why-marker", "Confidence", "uncertain")


@pytest.fixture
def audited(project, curator_carl):
    version = ModelVersionFactory(project=project, is_active=True)
    for i in range(20):
        interaction = InteractionFactory(
            project=project,
            drug_a=f"Auditone{i}",
            drug_b=f"Audittwo{i}",
            description=f"Auditone{i} may decrease the diuretic activities of Audittwo{i}.",
            blinded_text=f"DRUG_A may decrease the diuretic activities ({i}) of DRUG_B.",
        )
        PredictionFactory(
            interaction=interaction,
            model_version=version,
            predicted_class="Antagonistic",
            confidence=0.97,
            uncertainty=0.03,
            margin=0.94,
            probabilities=[0.03, 0.97],
            signals={"why": ["zzz-why-marker"]},
        )
    return audit_service.start_audit(project=project, user=curator_carl, size=5, seed=11)


def test_a_reviewer_does_five_blind_audit_items_without_seeing_the_model_answer(
    login, live_server, project, audited, reviewer_rita
):
    page = login(reviewer_rita)
    page.goto(f"{live_server.url}/projects/{project.pk}/review/")
    seen = []
    for _ in range(5):
        pane = page.locator("#review-pane")
        pane.wait_for()
        shown = pane.get_attribute("data-interaction")
        assert shown not in seen
        text = page.inner_text("main")
        assert "Blind review" in text
        for secret in SECRETS:
            assert secret not in text, (secret, text[:400])
        seen.append(shown)
        page.keyboard.press("1")  # the first class: Synergistic (the model said Antagonistic)
        page.wait_for_function(
            "before => { const p = document.getElementById('review-pane');"
            " return p && p.dataset.interaction !== before"
            " && document.body.dataset.reviewBusy === '0'; }",
            arg=shown,
        )
    answered = AuditItem.objects.filter(audit=audited, task__answered_at__isnull=False)
    assert answered.count() == 5
    assert Label.objects.filter(source="audit", author=reviewer_rita).count() == 5
    summary = get_audit_summary(project=project)
    assert summary.answered == 5 and summary.estimate.value < 0.5  # she disagreed every time
