"""Final label resolution: review > seed > rule > model, with provenance, streamed in one pass."""

from __future__ import annotations

import pytest

from annotations.models import Label, Rule
from annotations.selectors.final_labels import (
    FinalLabelFilters,
    FinalLabelStats,
    iter_final_labels,
)
from annotations.services.rules import create_rule
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory

pytestmark = pytest.mark.django_db


def _predict(interaction, version, cls, confidence=0.8):
    probabilities = (
        [confidence, 1 - confidence] if cls == "Synergistic" else [1 - confidence, confidence]
    )
    return PredictionFactory(
        interaction=interaction,
        model_version=version,
        predicted_class=cls,
        confidence=confidence,
        margin=abs(2 * confidence - 1),
        probabilities=probabilities,
    )


@pytest.fixture
def active_version(project):
    return ModelVersionFactory(project=project, number=1, is_active=True)


def test_each_source_wins_in_the_documented_order(project, active_version, reviewer_rita):
    reviewed, seeded, ruled, modeled, nothing = InteractionFactory.create_batch(5, project=project)
    special = InteractionFactory(
        project=project, blinded_text="DRUG_A decreases the efficacy of DRUG_B.", pattern_hash="p2"
    )
    for interaction in (reviewed, seeded, ruled, modeled, special):
        _predict(interaction, active_version, "Synergistic")
    Label.objects.create(
        interaction=reviewed, label_class="Antagonistic", source="review", author=reviewer_rita
    )
    Label.objects.create(interaction=seeded, label_class="Antagonistic", source="seed")
    rule = Rule.objects.create(
        project=project,
        name="decreases",
        pattern=r"decreases the efficacy",
        label_class="Antagonistic",
    )

    rows = {row.interaction_id: row for row in iter_final_labels(project=project)}

    assert rows[reviewed.id].source == "review"
    assert rows[reviewed.id].final_label == "Antagonistic"
    assert rows[reviewed.id].reviewer == "rita"
    assert rows[reviewed.id].reviewed_at is not None
    assert rows[seeded.id].source == "seed"
    assert rows[seeded.id].reviewer is None
    assert (rows[special.id].source, rows[special.id].rule_id) == ("rule", rule.id)
    assert rows[special.id].final_label == "Antagonistic"
    assert (rows[modeled.id].source, rows[modeled.id].final_label) == ("model", "Synergistic")
    assert rows[modeled.id].confidence == 0.8
    assert rows[modeled.id].model_version == 1
    assert rows[modeled.id].probabilities == pytest.approx([0.8, 0.2])
    assert nothing.id not in rows  # no label, no rule, no prediction: no final label


def test_review_beats_a_matching_rule_and_seed_beats_a_matching_rule(project, reviewer_rita):
    reviewed, seeded = InteractionFactory.create_batch(2, project=project)
    Label.objects.create(
        interaction=reviewed, label_class="Synergistic", source="review", author=reviewer_rita
    )
    Label.objects.create(interaction=seeded, label_class="Synergistic", source="import")
    Rule.objects.create(project=project, name="all", pattern="DRUG_A", label_class="Antagonistic")

    rows = list(iter_final_labels(project=project))

    assert [(r.source, r.final_label) for r in rows] == [
        ("review", "Synergistic"),
        ("seed", "Synergistic"),
    ]


def test_a_flagged_unclear_review_falls_through_to_the_model_and_is_marked(
    project, active_version, reviewer_rita
):
    interaction = InteractionFactory(project=project)
    _predict(interaction, active_version, "Antagonistic", 0.7)
    Label.objects.create(
        interaction=interaction,
        label_class="",
        status="unclear",
        source="review",
        author=reviewer_rita,
    )

    (row,) = iter_final_labels(project=project)

    assert (row.source, row.final_label, row.flagged_unclear) == ("model", "Antagonistic", True)
    assert row.reviewer == "rita"


def test_higher_priority_rule_wins_and_inactive_rules_are_ignored(project):
    interaction = InteractionFactory(project=project)
    Rule.objects.create(
        project=project, name="low", pattern="increase", label_class="Antagonistic", priority=1
    )
    high = Rule.objects.create(
        project=project, name="high", pattern="anticoagulant", label_class="Synergistic", priority=5
    )
    Rule.objects.create(
        project=project,
        name="off",
        pattern="DRUG_B",
        label_class="Antagonistic",
        priority=9,
        is_active=False,
    )

    (row,) = iter_final_labels(project=project)

    assert (row.interaction_id, row.rule_id, row.final_label) == (
        interaction.id,
        high.id,
        "Synergistic",
    )


def test_raw_text_rules_match_the_description_with_drug_names(project):
    InteractionFactory(project=project, drug_a="Warfarin")
    other = InteractionFactory(project=project, drug_a="Aspirin")
    Rule.objects.create(
        project=project,
        name="asp",
        kind="keyword",
        field="raw",
        pattern="aspirin",
        label_class="Antagonistic",
    )

    rows = list(iter_final_labels(project=project))

    assert [(r.interaction_id, r.source) for r in rows] == [(other.id, "rule")]


def test_only_the_active_model_versions_prediction_counts(project):
    interaction = InteractionFactory(project=project)
    old = ModelVersionFactory(project=project, number=1)
    _predict(interaction, old, "Antagonistic")
    new = ModelVersionFactory(project=project, number=2, is_active=True)
    _predict(interaction, new, "Synergistic", 0.95)

    (row,) = iter_final_labels(project=project)

    assert (row.final_label, row.model_version, row.confidence) == ("Synergistic", 2, 0.95)


def test_filters_apply_min_confidence_to_model_rows_sources_classes_and_reviewed_only(
    project, active_version, reviewer_rita
):
    sure, unsure, reviewed = InteractionFactory.create_batch(3, project=project)
    _predict(sure, active_version, "Synergistic", 0.95)
    _predict(unsure, active_version, "Antagonistic", 0.55)
    Label.objects.create(
        interaction=reviewed, label_class="Antagonistic", source="review", author=reviewer_rita
    )

    def ids(**kwargs):
        return [
            r.interaction_id
            for r in iter_final_labels(project=project, filters=FinalLabelFilters(**kwargs))
        ]

    assert ids(min_confidence=0.9) == [sure.id, reviewed.id]
    assert ids(sources=frozenset({"model"})) == [sure.id, unsure.id]
    assert ids(classes=frozenset({"Antagonistic"})) == [unsure.id, reviewed.id]
    assert ids(reviewed_only=True) == [reviewed.id]


def test_streaming_uses_one_query_per_batch_whatever_the_row_count(
    project, active_version, reviewer_rita, django_assert_max_num_queries
):
    interactions = InteractionFactory.create_batch(30, project=project)
    for interaction in interactions[:20]:
        _predict(interaction, active_version, "Synergistic")
    for interaction in interactions[20:]:
        Label.objects.create(
            interaction=interaction,
            label_class="Synergistic",
            source="review",
            author=reviewer_rita,
        )
    create_rule(
        project=project, user=None, name="r", pattern="never-matches-xyz", label_class="Synergistic"
    )
    stats = FinalLabelStats()

    # 1 model version + 2 "stored rule matches up to date?" + 4 batches of 10 (the last empty)
    with django_assert_max_num_queries(7):
        rows = list(iter_final_labels(project=project, batch_size=10, stats=stats))

    assert [r.interaction_id for r in rows] == [i.id for i in interactions]
    assert stats.by_source == {"review": 10, "seed": 0, "rule": 0, "model": 20}
    assert stats.rows == 30


def test_other_projects_rows_never_leak_into_an_export(project):
    InteractionFactory(project=project)
    stranger = InteractionFactory()  # another project
    Label.objects.create(interaction=stranger, label_class="Synergistic", source="seed")

    assert list(iter_final_labels(project=project)) == []
