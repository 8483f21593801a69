"""The simulated review loop (services/loop.py) and `manage.py loop` (a read-only preview)."""

from __future__ import annotations

import random
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from annotations import simulation as loop
from annotations.exceptions import InvalidReferenceFile
from annotations.models import (
    Interaction,
    Label,
    LabelEvent,
    ModelVersion,
    Prediction,
    ReviewSkip,
    Run,
    RunChunk,
)
from annotations.roles import Role, has_role
from annotations.selectors.final_labels import iter_final_labels
from annotations.selectors.queue import get_review_queue_page
from annotations.services.jobs.inline import run_job_inline
from annotations.services.jobs.starting import start_pseudolabel_run, start_train_run
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory
from tests.harness.data import ALL_PATTERNS, make_interactions, seed_labels

FAST = {"backbone": "tiny-random-bert", "epochs": 2}
REFERENCE = loop.Reference({text: cls for cls, text in ALL_PATTERNS}, source="test patterns")


@pytest.fixture
def tiny(settings, tmp_path):
    settings.DDI_BACKBONE = "tiny-random-bert"
    settings.DDI_ARTIFACTS_DIR = tmp_path / "models"
    return settings


@pytest.fixture
def trained(project, tiny):
    """60 interactions over 6 patterns; seeds on 4 of the patterns (20 labels); v1 trained and
    pseudo-labeled through the run services, as the app does."""
    interactions = make_interactions(project, 60)
    seed_labels([i for n, i in enumerate(interactions[:30]) if n % 6 in (0, 1, 3, 4)])
    run = run_job_inline(run_id=start_train_run(project=project, params=FAST, enqueue=False).pk)
    assert run.state == Run.State.SUCCEEDED, run.error
    version = ModelVersion.objects.get(project=project, is_active=True)
    run = start_pseudolabel_run(project=project, model_version=version, enqueue=False)
    assert run_job_inline(run_id=run.pk).state == Run.State.SUCCEEDED
    return project


def test_a_round_reviews_the_queue_head_through_the_label_service_retrains_and_scores(trained):
    reviewer = loop.get_simulated_reviewer()
    head = [
        item.interaction.pk
        for item in get_review_queue_page(project=trained, user=reviewer).items[:5]
    ]

    results = loop.simulate(
        project=trained,
        strategy="default",
        rounds=1,
        per_round=5,
        reference=REFERENCE,
        params={**FAST, "force_promote": True},
    )

    assert [r.round for r in results] == [0, 1]
    assert results[1].reviews == 5
    reviews = Label.objects.filter(source=Label.Source.REVIEW)
    assert sorted(reviews.values_list("interaction_id", flat=True)) == sorted(head)
    for label in reviews.select_related("interaction"):
        assert label.author == reviewer
        assert label.label_class == REFERENCE.answer(label.interaction)
    events = LabelEvent.objects.filter(actor=reviewer)
    assert events.count() == 5
    assert set(events.values_list("model_version__number", flat=True)) == {1}
    assert all(events.values_list("predicted_class", flat=True))
    training = results[1].training
    assert training.version == 2
    assert ModelVersion.objects.filter(project=trained).count() == 2
    assert training.promoted is True
    assert training.active_version == 2
    # Promoted: the retrain's pseudo-labeling ran with the new version.
    assert Prediction.objects.filter(model_version__number=2).count() == 60
    # The score is the final-label selector's output against the reference.
    final = {row.interaction_id: row.final_label for row in iter_final_labels(project=trained)}
    texts = dict(Interaction.objects.values_list("pk", "blinded_text"))
    correct = sum(
        final.get(pk) == REFERENCE.classes_by_pattern.get(text) for pk, text in texts.items()
    )
    assert results[1].score.rows == 60
    assert results[1].score.correct == correct
    assert has_role(reviewer, Role.REVIEWER)


def test_a_version_that_is_not_promoted_keeps_the_previous_one_and_its_queue(trained, monkeypatch):
    from annotations.services.jobs import promotion

    monkeypatch.setattr(
        promotion,
        "compare_on_held_out",
        _never_promote(promotion.compare_on_held_out),
    )
    before = Prediction.objects.count()

    results = loop.simulate(
        project=trained, strategy="default", rounds=1, per_round=3, reference=REFERENCE, params=FAST
    )

    training = results[1].training
    assert training.promoted is False
    assert training.active_version == 1
    assert Prediction.objects.count() == before  # no pseudo-labeling for a version not promoted
    # The 3 reviews still count in the final labels.
    assert Label.objects.filter(source=Label.Source.REVIEW).count() == 3


def _never_promote(original):
    """Wrap compare_on_held_out: the new version always scores -1 (never promoted)."""
    import dataclasses

    def compare(*, project, new, active):
        return dataclasses.replace(original(project=project, new=new, active=active), new_f1=-1.0)

    return compare


def test_strategies_pick_from_the_same_unreviewed_pool_in_their_own_order(trained):
    reviewer = loop.get_simulated_reviewer()
    labeled = set(Label.objects.values_list("interaction_id", flat=True))

    # One queue page each: the spread page defers rows of a pattern past its cursor (documented
    # in selectors/queue.py), so a pass over several pages may hold fewer than the pool.
    default = loop.pick_items(
        project=trained, user=reviewer, strategy="default", count=25, rng=random.Random(0)
    )
    strict = loop.pick_items(
        project=trained, user=reviewer, strategy="lowest-confidence", count=25, rng=random.Random(0)
    )
    first = loop.pick_items(
        project=trained, user=reviewer, strategy="random", count=7, rng=random.Random(3)
    )
    again = loop.pick_items(
        project=trained, user=reviewer, strategy="random", count=7, rng=random.Random(3)
    )

    assert len(default) == len(strict) == 25
    page = get_review_queue_page(project=trained, user=reviewer)
    assert [i.pk for i in default[:25]] == [item.interaction.pk for item in page.items]
    confidences = dict(
        Prediction.objects.filter(model_version__is_active=True).values_list(
            "interaction_id", "confidence"
        )
    )
    strict_conf = [confidences[i.pk] for i in strict]
    assert strict_conf == sorted(strict_conf)
    assert [i.pk for i in first] == [i.pk for i in again]
    assert not labeled & {i.pk for i in default + strict + first}
    with pytest.raises(ValueError, match="unknown strategy"):
        loop.pick_items(project=trained, user=reviewer, strategy="best", count=1, rng=None)


def test_items_the_reference_cannot_answer_are_skipped_not_guessed(project, reviewer_rita):
    known, unknown = ALL_PATTERNS[0][1], "DRUG_A and DRUG_B: a sentence nobody judged."
    items = [
        InteractionFactory(project=project, blinded_text=known),
        InteractionFactory(project=project, blinded_text=unknown),
    ]

    reviewed, skipped = loop.answer_items(items=items, user=reviewer_rita, reference=REFERENCE)

    assert (reviewed, skipped) == (1, 1)
    assert Label.objects.get().interaction == items[0]
    assert ReviewSkip.objects.get().interaction == items[1]


def test_score_counts_rows_without_a_final_label_as_wrong_and_unknown_patterns_apart(project):
    syn, ant = ALL_PATTERNS[0][1], ALL_PATTERNS[3][1]
    version = ModelVersionFactory(project=project, is_active=True)
    rows = [InteractionFactory(project=project, blinded_text=syn) for _ in range(3)]
    rows += [InteractionFactory(project=project, blinded_text=ant) for _ in range(2)]
    rows.append(InteractionFactory(project=project, blinded_text="DRUG_A, unjudged, DRUG_B."))
    # rows 0-1 right by model, row 2 no prediction (wrong), row 3 right by seed, row 4 wrong.
    for row in rows[:2]:
        PredictionFactory(interaction=row, model_version=version, predicted_class="Synergistic")
    Label.objects.create(interaction=rows[3], label_class="Antagonistic", source="seed")
    PredictionFactory(interaction=rows[4], model_version=version, predicted_class="Synergistic")

    score = loop.score_final_labels(project=project, reference=REFERENCE)

    assert (score.rows, score.correct, score.wrong, score.not_covered) == (5, 3, 2, 1)
    assert score.accuracy == pytest.approx(0.6)
    # F1 Synergistic: P 2/3, R 2/3 -> 2/3; Antagonistic: P 1/1, R 1/2 -> 2/3.
    assert score.macro_f1 == pytest.approx(2 / 3)
    assert score.per_pattern[syn][:3] == [3, 2, "Synergistic"]
    assert score.per_pattern[ant][:3] == [2, 1, "Antagonistic"]


def test_reference_csv_is_checked_against_the_project_classes(project, tmp_path):
    good = tmp_path / "ref.csv"
    good.write_text("pattern,label,seed\nDRUG_A up DRUG_B.,Synergistic,no\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("pattern,label\nDRUG_A up DRUG_B.,Additive\n")
    wrong_columns = tmp_path / "cols.csv"
    wrong_columns.write_text("text,class\n")

    assert loop.load_reference_csv(path=good, project=project).classes_by_pattern == {
        "DRUG_A up DRUG_B.": "Synergistic"
    }
    with pytest.raises(InvalidReferenceFile, match="line 2: 'Additive' is not a class"):
        loop.load_reference_csv(path=bad, project=project)
    with pytest.raises(InvalidReferenceFile, match="missing: label, pattern"):
        loop.load_reference_csv(path=wrong_columns, project=project)


def test_reference_from_current_labels_takes_the_majority_class_per_pattern(project):
    syn = ALL_PATTERNS[0][1]
    rows = [InteractionFactory(project=project, blinded_text=syn) for _ in range(3)]
    for row, cls in zip(rows, ["Synergistic", "Antagonistic", "Synergistic"], strict=True):
        Label.objects.create(interaction=row, label_class=cls, source="seed")
    flagged = InteractionFactory(project=project, blinded_text=ALL_PATTERNS[3][1])
    Label.objects.create(interaction=flagged, status=Label.Status.UNCLEAR, source="review")

    reference = loop.reference_from_current_labels(project=project)

    assert reference.classes_by_pattern == {syn: "Synergistic"}


# --- manage.py loop -----------------------------------------------------------------------------


def _snapshot() -> dict:
    user_model = get_user_model()
    return {
        "labels": list(Label.objects.order_by("pk").values()),
        "events": list(LabelEvent.objects.order_by("pk").values()),
        "versions": list(ModelVersion.objects.order_by("pk").values()),
        "predictions": list(Prediction.objects.order_by("pk").values()),
        "runs": list(Run.objects.order_by("pk").values()),
        "chunks": RunChunk.objects.count(),
        "skips": ReviewSkip.objects.count(),
        "users": list(user_model.objects.order_by("pk").values_list("pk", "username")),
    }


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_the_loop_command_previews_rounds_and_leaves_the_database_exactly_as_before(
    trained, tiny, tmp_path
):
    reference = tmp_path / "reference.csv"
    reference.write_text(
        "pattern,label\n" + "".join(f'"{text}",{cls}\n' for cls, text in ALL_PATTERNS)
    )
    before, files_before = _snapshot(), _files(tiny.DDI_ARTIFACTS_DIR)
    out = StringIO()

    call_command(
        "loop",
        rounds=2,
        per_round=4,
        reference=reference,
        backbone="tiny-random-bert",
        epochs=1,
        stdout=out,
    )

    text = out.getvalue()
    assert "round 0: 0 reviews" in text
    assert "round 2: 8 reviews" in text
    assert "Rolled back" in text
    assert _snapshot() == before
    assert _files(tiny.DDI_ARTIFACTS_DIR) == files_before
    assert tmp_path / "models" == tiny.DDI_ARTIFACTS_DIR  # the setting is never swapped


def test_the_loop_command_defaults_to_the_projects_own_labels_as_reference(trained, tiny):
    before = _snapshot()
    out = StringIO()

    call_command("loop", rounds=1, per_round=6, strategy="random", epochs=1, stdout=out)

    text = out.getvalue()
    assert "reference: current labels of 'DrugBank DDI' (4 patterns)" in text
    # Rows of the 2 patterns without any label are not scored (20 of 60).
    assert "rows not scored: pattern unknown to the reference" in text
    assert "of 40 scored rows wrong" in text
    assert _snapshot() == before


def test_the_loop_command_refuses_a_project_without_a_model(project):
    seed_labels(make_interactions(project, 6))
    with pytest.raises(CommandError, match="no active model version"):
        call_command("loop", rounds=1, per_round=1, stdout=StringIO())
    with pytest.raises(CommandError, match="No project named 'Nope'"):
        call_command("loop", project="Nope", stdout=StringIO())
