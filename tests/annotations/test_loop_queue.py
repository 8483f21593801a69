"""Queue change driven by bench/loop.py: sentence patterns nobody labeled yet come first."""

from __future__ import annotations

import pytest

from annotations.models import Label
from annotations.selectors.queue import get_review_queue_page
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory


@pytest.fixture
def active_version(project):
    return ModelVersionFactory(project=project, is_active=True)


def _row(project, version, pattern: str, confidence: float):
    interaction = InteractionFactory(project=project, blinded_text=f"DRUG_A {pattern} DRUG_B.")
    PredictionFactory(
        interaction=interaction,
        model_version=version,
        confidence=confidence,
        margin=2 * confidence - 1,
        probabilities=[confidence, 1 - confidence],
    )
    return interaction


def test_a_pattern_without_any_label_comes_before_more_uncertain_labeled_ones(
    project, active_version, reviewer_rita
):
    labeled = [_row(project, active_version, "seen", 0.5) for _ in range(3)]
    Label.objects.create(interaction=labeled[0], label_class="Synergistic", source="seed")
    also_labeled = _row(project, active_version, "known", 0.6)
    Label.objects.create(
        interaction=_row(project, active_version, "known", 0.99),
        label_class="Antagonistic",
        source="seed",
    )
    novel_sure = _row(project, active_version, "novel-a", 1.0)
    novel_less_sure = _row(project, active_version, "novel-b", 0.95)

    page = get_review_queue_page(project=project, user=reviewer_rita, page_size=4, per_pattern=1)

    assert [item.interaction.pk for item in page.items] == [
        novel_less_sure.pk,  # unlabeled patterns first, most uncertain first among them
        novel_sure.pk,
        labeled[1].pk,  # then the labeled patterns in uncertainty order
        also_labeled.pk,
    ]


def test_a_flagged_unclear_label_does_not_make_a_pattern_known(
    project, active_version, reviewer_rita
):
    flagged = _row(project, active_version, "doubtful", 0.9)
    Label.objects.create(interaction=flagged, status=Label.Status.UNCLEAR, source="review")
    doubtful = _row(project, active_version, "doubtful", 0.9)
    seen = _row(project, active_version, "seen", 0.5)
    Label.objects.create(
        interaction=_row(project, active_version, "seen", 0.5),
        label_class="Synergistic",
        source="review",
    )

    page = get_review_queue_page(project=project, user=reviewer_rita, page_size=2, per_pattern=1)

    assert [item.interaction.pk for item in page.items] == [doubtful.pk, seen.pk]


def test_strict_order_is_unchanged_by_labels(project, active_version, reviewer_rita):
    seen = _row(project, active_version, "seen", 0.5)
    Label.objects.create(
        interaction=_row(project, active_version, "seen", 0.4),
        label_class="Synergistic",
        source="seed",
    )
    novel = _row(project, active_version, "novel", 0.9)

    page = get_review_queue_page(project=project, user=reviewer_rita, spread=False)

    assert [item.interaction.pk for item in page.items] == [seen.pk, novel.pk]
