"""Dashboard numbers (aggregate selectors) and the page with its polled run partial."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from annotations.models import Label, Run
from annotations.selectors import stats
from annotations.services import labels
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory


@pytest.fixture
def populated(project, reviewer_rita, reviewer_rob):
    """5 interactions: 1 seed label, 2 reviews (rita, rob), active-model predictions on 4."""
    old = ModelVersionFactory(project=project, number=1, metrics={"accuracy": 0.7, "macro_f1": 0.6})
    active = ModelVersionFactory(
        project=project, number=2, is_active=True, metrics={"accuracy": 0.8, "macro_f1": 0.75}
    )
    rows = [InteractionFactory(project=project) for _ in range(5)]
    for row, (cls, confidence) in zip(
        rows[:4],
        [
            ("Synergistic", 0.55),
            ("Synergistic", 0.95),
            ("Antagonistic", 0.65),
            ("Antagonistic", 1.0),
        ],
        strict=True,
    ):
        PredictionFactory(
            interaction=row, model_version=active, predicted_class=cls, confidence=confidence
        )
    PredictionFactory(interaction=rows[0], model_version=old, confidence=0.9)
    Label.objects.create(interaction=rows[4], label_class="Antagonistic", source="seed")
    labels.record_review(
        interaction=rows[0], user=reviewer_rita, label_class="Antagonistic", expected_version=None
    )
    labels.record_review(
        interaction=rows[1], user=reviewer_rob, label_class="Synergistic", expected_version=None
    )
    return rows


def test_counts_split_seed_reviewed_pseudo_and_low_confidence(project, populated, settings):
    settings.DDI_LOW_CONFIDENCE = 0.9
    counts = stats.get_dashboard_counts(project=project)
    assert counts.interactions == 5
    assert counts.seed_labels == 1
    assert counts.reviewed == 2
    assert counts.pseudo_labeled == 4
    # Only rows[2] (0.65) is below 0.9 and unlabeled; rows[0] (0.55) is reviewed.
    assert counts.low_confidence_unreviewed == 1


def test_class_distribution_and_histogram_per_class(project, populated):
    dist = stats.get_class_distribution(project=project)
    assert dist == {
        "classes": ["Synergistic", "Antagonistic"],
        "labels": [1, 2],
        "predictions": [2, 2],
    }
    hist = stats.get_confidence_histogram(project=project)
    assert hist["edges"][0] == 0.0 and hist["edges"][-1] == 1.0
    synergistic, antagonistic = hist["counts"]
    assert synergistic[5] == 1 and synergistic[9] == 1
    assert antagonistic[6] == 1 and antagonistic[9] == 1  # confidence 1.0 in the last bin
    assert sum(synergistic) + sum(antagonistic) == 4


def test_throughput_counts_reviews_per_reviewer_per_day(project, populated):
    throughput = stats.get_reviewer_throughput(project=project)
    assert throughput["total"] == 2
    assert [r["name"] for r in throughput["reviewers"]] == ["rita", "rob"]
    assert all(r["counts"][-1] == 1 for r in throughput["reviewers"])


def test_metrics_over_versions_in_version_order(project, populated):
    metrics = stats.get_metrics_over_versions(project=project)
    assert metrics["versions"] == ["v1", "v2"]
    assert metrics["series"]["accuracy"] == [0.7, 0.8]
    assert metrics["names"]["ece"] == "calibration error of the confidence (out of fold)"


def test_dashboard_page_renders_counts_and_chart_data(client, reviewer_rita, project, populated):
    client.force_login(reviewer_rita)
    response = client.get(reverse("annotations:dashboard", args=[project.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="count-interactions">5<' in body
    data = json.loads(body.split('id="dashboard-data" type="application/json">')[1].split("<")[0])
    assert data["distribution"]["predictions"] == [2, 2]
    assert "<script>" not in body.replace('<script src="', "")


def test_dashboard_query_count_does_not_grow_with_rows(
    client, reviewer_rita, project, populated, django_assert_max_num_queries
):
    client.force_login(reviewer_rita)
    with django_assert_max_num_queries(30):
        client.get(reverse("annotations:dashboard", args=[project.pk]))


def test_running_jobs_partial_shows_a_progress_bar(client, reviewer_rita, admin_ada, project):
    Run.objects.create(
        project=project,
        kind=Run.Kind.PSEUDOLABEL,
        state=Run.State.RUNNING,
        progress_done=30,
        progress_total=120,
        stage="predicting",
    )
    client.force_login(reviewer_rita)
    body = client.get(reverse("annotations:dashboard_runs", args=[project.pk])).content.decode()
    assert 'max="100" value="25"' in body
    assert "25%" in body and "(30 / 120)" in body and "predicting" in body
    assert "/runs/" not in body  # reviewers see progress, not the admin-only run pages
    client.force_login(admin_ada)
    body = client.get(reverse("annotations:dashboard_runs", args=[project.pk])).content.decode()
    assert "/runs/" in body
