"""A promoted version without predictions never empties the queue or the final labels.

A train-only run promotes a version that has no predictions yet (and a retrain's version has
some only while its pseudo-labeling runs): until that is done, the queue, the review item, the
final labels and the dashboard keep using the newest version whose predictions are complete.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from annotations.models import Run
from annotations.selectors.final_labels import iter_final_labels
from annotations.selectors.queue import get_review_queue_page
from annotations.selectors.stats import get_dashboard_counts
from annotations.selectors.versions import get_serving_model_version
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory


@pytest.fixture
def v1_labeled(project):
    """Five interactions, each with a prediction of v1 (active)."""
    v1 = ModelVersionFactory(project=project, number=1, is_active=True, promoted_at=timezone.now())
    interactions = [InteractionFactory(project=project) for _ in range(5)]
    for interaction in interactions:
        PredictionFactory(interaction=interaction, model_version=v1)
    return v1, interactions


def _promote_v2(project, v1):
    v1.is_active = False
    v1.save()
    return ModelVersionFactory(
        project=project, number=2, is_active=True, promoted_at=timezone.now()
    )


def test_after_a_train_only_promotion_the_queue_keeps_the_previous_versions_predictions(
    project, v1_labeled, reviewer_rita
):
    v1, _ = v1_labeled
    _promote_v2(project, v1)  # what a train-only run does: active, 0 predictions

    page = get_review_queue_page(project=project, user=reviewer_rita)
    assert len(page.items) == 5
    assert page.model_version == v1
    rows = list(iter_final_labels(project=project))
    assert {row.model_version for row in rows} == {1} and len(rows) == 5
    assert get_dashboard_counts(project=project).pseudo_labeled == 5


def test_the_queue_switches_to_the_new_version_when_its_pseudo_labeling_has_ended(
    project, v1_labeled, reviewer_rita
):
    v1, interactions = v1_labeled
    v2 = _promote_v2(project, v1)
    run = Run.objects.create(
        project=project, kind=Run.Kind.PSEUDOLABEL, model_version=v2, state=Run.State.RUNNING
    )
    for interaction in interactions[:2]:  # half-way through
        PredictionFactory(interaction=interaction, model_version=v2)
    assert get_serving_model_version(project=project) == v1
    assert len(get_review_queue_page(project=project, user=reviewer_rita).items) == 5

    for interaction in interactions[2:]:
        PredictionFactory(interaction=interaction, model_version=v2)
    Run.objects.filter(pk=run.pk).update(state=Run.State.SUCCEEDED)

    page = get_review_queue_page(project=project, user=reviewer_rita)
    assert page.model_version == v2 and len(page.items) == 5
    assert {row.model_version for row in iter_final_labels(project=project)} == {2}


def test_with_no_predictions_anywhere_the_active_version_is_used(project):
    v1 = ModelVersionFactory(project=project, number=1, is_active=True, promoted_at=timezone.now())
    assert get_serving_model_version(project=project) == v1
