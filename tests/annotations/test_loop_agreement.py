"""Online reviewer agreement per model version, from LabelEvent, and its place on the dashboard."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from annotations.models import Label, ModelVersion
from annotations.selectors import stats
from annotations.services import labels
from tests.factories import (
    InteractionFactory,
    ModelVersionFactory,
    PredictionFactory,
    ProjectFactory,
)


def _activate(version: ModelVersion) -> None:
    ModelVersion.objects.filter(project=version.project).update(is_active=False)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)


@pytest.fixture
def reviewed(project, reviewer_rita, reviewer_rob):
    """v1: 3 reviews of its predictions (2 agree) + 1 flag; v2: 1 disagreeing review then undone;
    v3: none. Plus a seed label and another project's agreeing review (neither counts)."""
    v1 = ModelVersionFactory(project=project, number=1, metrics={"macro_f1": 0.8})
    v2 = ModelVersionFactory(project=project, number=2, metrics={"macro_f1": 0.9})
    ModelVersionFactory(project=project, number=3, metrics={})
    rows = [InteractionFactory(project=project) for _ in range(6)]
    for row in rows[:4]:
        PredictionFactory(interaction=row, model_version=v1, predicted_class="Synergistic")
    for row in rows[4:]:
        PredictionFactory(interaction=row, model_version=v2, predicted_class="Antagonistic")
    _activate(v1)
    labels.record_review(
        interaction=rows[0], user=reviewer_rita, label_class="Synergistic", expected_version=None
    )
    labels.record_review(
        interaction=rows[1], user=reviewer_rita, label_class="Antagonistic", expected_version=None
    )
    labels.accept_prediction(interaction=rows[2], user=reviewer_rob, expected_version=None)
    labels.record_review(
        interaction=rows[3],
        user=reviewer_rita,
        label_class=None,
        status=Label.Status.UNCLEAR,
        note="cannot tell",
        expected_version=None,
        action="flag",
    )
    _activate(v2)
    labels.record_review(
        interaction=rows[4], user=reviewer_rob, label_class="Synergistic", expected_version=None
    )
    labels.undo_last_action(user=reviewer_rob, project=project)
    Label.objects.create(interaction=rows[5], label_class="Antagonistic", source="seed")
    other = ProjectFactory(name="Other")
    other_version = ModelVersionFactory(project=other, number=1, is_active=True)
    elsewhere = InteractionFactory(project=other)
    PredictionFactory(interaction=elsewhere, model_version=other_version)
    labels.record_review(
        interaction=elsewhere, user=reviewer_rita, label_class="Synergistic", expected_version=None
    )
    return project


def test_agreement_counts_reviews_of_each_versions_predictions_and_nothing_else(reviewed):
    rows = stats.list_review_agreement(project=reviewed)

    assert [(r.number, r.reviews, r.agreed) for r in rows] == [(1, 3, 2), (2, 1, 0), (3, 0, 0)]
    v1, v2, v3 = rows
    assert v1.rate == pytest.approx(2 / 3)
    assert v1.interval == pytest.approx((0.2077, 0.9385), abs=1e-4)
    assert v2.rate == 0.0
    assert v2.is_active
    assert v3.rate is None
    assert v3.interval is None
    assert (v1.validation_macro_f1, v3.validation_macro_f1) == (0.8, None)


def test_learning_curve_lists_versions_in_order_with_f1_agreement_and_counts(reviewed):
    curve = stats.get_learning_curve(project=reviewed)

    assert curve["versions"] == ["v1", "v2", "v3"]
    assert curve["macro_f1"] == [0.8, 0.9, None]
    assert curve["agreement"] == [0.6667, 0.0, None]
    assert curve["reviews"] == [3, 1, 0]
    assert curve["agreement_low"][0] == pytest.approx(0.2077, abs=1e-4)
    assert curve["agreement_high"][2] is None
    assert all(curve["created"])


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        (2, 3, (0.2077, 0.9385)),
        (0, 1, (0.0, 0.7935)),
        (10, 10, (0.7225, 1.0)),
        (50, 100, (0.4038, 0.5962)),
    ],
)
def test_wilson_interval_matches_published_values(successes, n, expected):
    assert stats.wilson_interval(successes, n) == pytest.approx(expected, abs=1e-4)


def test_wilson_interval_without_observations_is_none():
    assert stats.wilson_interval(0, 0) is None


def test_dashboard_shows_agreement_with_its_count_and_interval(client, reviewer_rita, reviewed):
    client.force_login(reviewer_rita)

    response = client.get(reverse("annotations:dashboard", args=[reviewed.pk]))

    assert response.status_code == 200
    body = response.content.decode()
    assert "Reviewer agreement per model version" in body
    assert "67% (2/3)" in body
    assert "0.21\u20130.94" in body
    assert 'id="chart-learning"' in body
    data = json.loads(body.split('id="dashboard-data" type="application/json">')[1].split("<")[0])
    assert data["learning"]["reviews"] == [3, 1, 0]
