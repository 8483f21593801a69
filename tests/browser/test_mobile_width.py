"""At 390 px (a phone), the queue, the dashboard and the runs page do not scroll sideways; a wide
table scrolls inside its own box."""

from __future__ import annotations

import pytest

from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def predicted(project):
    version = ModelVersionFactory(
        project=project,
        is_active=True,
        metrics={"accuracy": 0.81, "macro_f1": 0.79, "human_labels": {"macro_f1": 0.8, "n": 40}},
        promotion_decision="promoted: macro-F1 0.8000 >= active v1 0.7000 on 40 human labels",
    )
    for i in range(3):
        interaction = InteractionFactory(
            project=project,
            drug_a=f"Hydroxychloroquinesulfate{i}",
            drug_b=f"Dextroamphetaminesaccharate{i}",
            source_file="a-rather-long-file-name-from-the-pharmacy-export-2026.csv",
        )
        PredictionFactory(interaction=interaction, model_version=version)


@pytest.mark.parametrize("page_path", ["queue", "dashboard", "runs"])
def test_a_phone_wide_page_does_not_scroll_sideways(
    login, live_server, project, predicted, admin_ada, page_path
):
    page = login(admin_ada, width=390, height=844)
    page.goto(f"{live_server.url}/projects/{project.pk}/{page_path}/")
    page.wait_for_load_state("networkidle")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page_path} is {overflow}px wider than the screen"
