"""Training runs: examples gathered, version stored, promotion rule, cancellation, single flight."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from annotations.models import Interaction, Label, LabelEvent, ModelVersion, Prediction, Run
from annotations.services.jobs.lifecycle import RetryLater, claim_run
from annotations.services.jobs.promotion import decide_promotion, human_label_pairs
from annotations.services.jobs.pseudolabel import run_pseudolabel_inline
from annotations.services.jobs.starting import (
    start_pseudolabel_run,
    start_retrain_run,
    start_train_run,
)
from annotations.services.jobs.training import RunCancelled, run_training_job, train_for_run
from annotations.services.jobs.training_data import gather_training_examples
from tests.factories import ModelVersionFactory, PredictionFactory, UserFactory
from tests.harness.data import make_interactions, seed_labels

FAST = {"epochs": 2, "backbone": "tiny-random-bert"}


@pytest.fixture
def tiny(settings, tmp_path):
    settings.DDI_BACKBONE = "tiny-random-bert"
    settings.DDI_ARTIFACTS_DIR = tmp_path / "models"
    return settings


@pytest.fixture
def labeled(project):
    """24 interactions with correct seed labels, both classes."""
    interactions = make_interactions(project, 24)
    seed_labels(interactions)
    return interactions


def test_a_train_run_stores_a_ready_active_version_with_metrics(project, labeled, tiny):
    run = start_train_run(project=project, params=FAST)

    run = run_training_job(run_id=run.pk, enqueue=False)

    assert run.state == Run.State.SUCCEEDED, run.error
    version = run.model_version
    assert version.status == ModelVersion.Status.READY
    assert version.is_active
    assert version.number == 1
    assert version.n_train_examples == 24
    assert "macro_f1" in version.metrics
    assert Path(version.artifact_path) == tiny.DDI_ARTIFACTS_DIR / str(project.pk) / "v1"
    assert (Path(version.artifact_path) / "model.json").is_file()
    assert len(version.data_fingerprint) == 64
    assert version.train_config["backbone"] == "tiny-random-bert"
    assert version.promotion_decision.startswith("promoted: no active version")
    assert run.result["promoted"] is True
    assert run.result["examples"]["seed"] == 24
    assert run.progress_done == run.progress_total > 0


def test_with_an_onnx_int8_backend_the_training_job_exports_gates_and_pseudo_labels_on_onnx(
    project, labeled, tiny, settings
):
    from annotations.services import ml

    settings.DDI_INFERENCE_BACKEND = "onnx-int8"
    run = run_training_job(run_id=start_train_run(project=project, params=FAST).pk, enqueue=False)
    assert run.state == Run.State.SUCCEEDED, run.error
    folder = Path(run.model_version.artifact_path)
    members = json.loads((folder / "model.json").read_text())["committee"]["members"]
    texts = set(Interaction.objects.filter(project=project).values_list("blinded_text", flat=True))
    usable = []
    for name in members:  # exported and gated offline, by the job, member by member
        assert (folder / name / "onnx" / "model.onnx").is_file()
        assert (folder / name / "onnx" / "model.int8.onnx").is_file()
        gate = json.loads((folder / name / "model.json").read_text())["onnx_int8"]
        assert gate["n_distinct"] == len(texts)
        usable.append(gate["usable"])
    served = ml.get_predictor(run.model_version)
    assert [m.backend for m in served.members] == ["onnx-int8" if ok else "onnx" for ok in usable]
    pseudolabel = start_pseudolabel_run(project=project, model_version=run.model_version)
    pseudolabel = run_pseudolabel_inline(run_id=pseudolabel.pk)
    assert pseudolabel.state == Run.State.SUCCEEDED, pseudolabel.error
    assert Prediction.objects.filter(model_version=run.model_version).count() == 24


def test_too_few_labels_fail_the_run_with_what_is_missing(project, tiny):
    seed_labels(make_interactions(project, 3))
    run = run_training_job(run_id=start_train_run(project=project).pk, enqueue=False)
    assert run.state == Run.State.FAILED
    assert "3 usable labels" in run.error
    assert "at least 10" in run.error


@pytest.fixture
def human_labels_from(project):
    """Label 24 interactions with what a given artifact predicts (so it agrees on every one)."""

    def label(artifact: Path) -> None:
        from modeling.inference import Predictor

        interactions = make_interactions(project, 24)
        predictor = Predictor.load(artifact)
        probs = predictor.predict_batch([i.blinded_text for i in interactions])
        for interaction, row in zip(interactions, probs, strict=True):
            Label.objects.create(
                interaction=interaction,
                label_class=predictor.classes[int(row.argmax())],
                source=Label.Source.SEED,
            )

    return label


def version_at(project, artifact: Path, *, active: bool, oof_f1: float) -> ModelVersion:
    return ModelVersionFactory(
        project=project,
        artifact_path=str(artifact),
        is_active=active,
        metrics={"macro_f1": oof_f1, "evaluated_on": "out-of-fold", "n_train": 24},
    )


def test_a_version_below_the_floor_is_refused_even_with_no_active_version(
    project, tiny_artifact, settings
):
    settings.DDI_PROMOTION_MIN_MACRO_F1 = 0.6  # the default (tests otherwise run without a floor)
    # The demo's 0.36-accuracy retrain: refused, not promoted because nothing else is active.
    new = version_at(project, tiny_artifact, active=False, oof_f1=0.36)
    run = Run.objects.create(project=project, kind=Run.Kind.TRAIN)

    assert decide_promotion(run=run, model_version=new) is False

    new.refresh_from_db()
    assert not new.is_active
    assert new.promotion_decision == (
        "not promoted: its out-of-fold macro-F1 0.360 is below the floor 0.60"
    )


def test_a_version_trained_on_contradictory_labels_is_refused(project, tiny, tmp_path):
    tiny.DDI_PROMOTION_MIN_MACRO_F1 = 0.6
    # Every text labelled both ways: no member can be right out of fold.
    interactions = make_interactions(project, 24)
    for n, interaction in enumerate(interactions):
        Label.objects.create(
            interaction=interaction,
            label_class=project.label_classes[n % 2],
            source=Label.Source.SEED,
        )
    run = run_training_job(run_id=start_train_run(project=project, params=FAST).pk, enqueue=False)
    version = ModelVersion.objects.get(pk=run.result["model_version"])
    assert version.metrics["evaluated_on"] == "out-of-fold"
    assert version.metrics["macro_f1"] < 0.6
    assert not version.is_active
    assert "below the floor" in version.promotion_decision


def test_a_tie_keeps_the_active_version(project, tiny_artifact, human_labels_from):
    human_labels_from(tiny_artifact)
    active = version_at(project, tiny_artifact, active=True, oof_f1=0.9)
    new = version_at(project, tiny_artifact, active=False, oof_f1=0.9)
    run = Run.objects.create(project=project, kind=Run.Kind.TRAIN)

    assert decide_promotion(run=run, model_version=new) is False

    active.refresh_from_db()
    assert active.is_active and not new.is_active
    assert new.promotion_decision.startswith(
        f"not promoted: macro-F1 0.900 ties v{active.number}'s 0.900 out-of-fold scores"
    )
    assert run.__class__.objects.get(pk=run.pk).result["promoted"] is False


def test_a_better_out_of_fold_score_promotes_and_retires_the_old_one(
    project, tiny_artifact, human_labels_from
):
    human_labels_from(tiny_artifact)
    active = version_at(project, tiny_artifact, active=True, oof_f1=0.8)
    new = version_at(project, tiny_artifact, active=False, oof_f1=0.95)
    run = Run.objects.create(project=project, kind=Run.Kind.TRAIN)

    assert decide_promotion(run=run, model_version=new) is True

    active.refresh_from_db()
    assert not active.is_active and new.is_active and new.promoted_at is not None
    assert new.promotion_decision.startswith(f"promoted: macro-F1 0.950 beats v{active.number}'s")


def test_labels_the_active_version_never_saw_decide_with_the_new_versions_out_of_fold_answers(
    project, tiny_artifact, tmp_path, settings
):
    """Both versions scored on the same held-out labels: the new one by its out-of-fold
    predictions (it trained on them), the active one directly (it never saw them)."""
    from modeling.inference import Predictor
    from modeling.uncertainty import text_key

    settings.DDI_PROMOTION_MIN_HELD_OUT = 5
    version_at(project, tiny_artifact, active=True, oof_f1=0.7)
    predictor = Predictor.load(tiny_artifact)
    unseen = [f"DRUG_A and DRUG_B were given together in study number {n}." for n in range(8)]
    probs = predictor.predict_batch(unseen)
    answers = [predictor.classes[int(row.argmax())] for row in probs]
    fresh = make_interactions(project, len(unseen), start=1000)
    for interaction, text, answer in zip(fresh, unseen, answers, strict=True):
        interaction.blinded_text = text
        interaction.save(update_fields=["blinded_text"])
        # The human agrees with the active version on every one.
        Label.objects.create(interaction=interaction, label_class=answer, source=Label.Source.SEED)
    # The new version's out-of-fold answers on those texts are all the other class.
    newer = shutil.copytree(tiny_artifact, tmp_path / "newer")
    other = {c: i for i, c in enumerate(predictor.classes)}
    record = json.loads((newer / "out_of_fold.json").read_text())
    record["predictions"].update(
        {text_key(t): 1 - other[a] for t, a in zip(unseen, answers, strict=True)}
    )
    (newer / "out_of_fold.json").write_text(json.dumps(record))
    new = version_at(project, newer, active=False, oof_f1=0.99)
    run = Run.objects.create(project=project, kind=Run.Kind.TRAIN)

    assert decide_promotion(run=run, model_version=new) is False

    new.refresh_from_db()
    assert "on 8 human labels v" in new.promotion_decision
    assert "never trained on" in new.promotion_decision
    run.refresh_from_db()
    assert run.result["n_compared"] == 8
    assert run.result["compared_macro_f1"] == 0.0
    assert run.result["previous_compared_macro_f1"] == 1.0


def _held_out_labels_and_a_newer_version(project, tiny_artifact, tmp_path, *, n, flipped):
    """`n` human labels on texts the active version never saw, each agreeing with the active
    version; the new version's out-of-fold answers take the other class on `flipped` of them."""
    from modeling.inference import Predictor
    from modeling.uncertainty import text_key

    active = version_at(project, tiny_artifact, active=True, oof_f1=0.7)
    predictor = Predictor.load(tiny_artifact)
    unseen = [f"DRUG_A and DRUG_B were given together in trial arm {k}." for k in range(n)]
    answers = [predictor.classes[int(r.argmax())] for r in predictor.predict_batch(unseen)]
    for interaction, text, answer in zip(
        make_interactions(project, n, start=2000), unseen, answers, strict=True
    ):
        interaction.blinded_text = text
        interaction.save(update_fields=["blinded_text"])
        Label.objects.create(interaction=interaction, label_class=answer, source=Label.Source.SEED)
    newer = shutil.copytree(tiny_artifact, tmp_path / "newer")
    index = {c: i for i, c in enumerate(predictor.classes)}
    record = json.loads((newer / "out_of_fold.json").read_text())
    record["predictions"].update(
        {
            text_key(t): index[a] if k >= flipped else 1 - index[a]
            for k, (t, a) in enumerate(zip(unseen, answers, strict=True))
        }
    )
    (newer / "out_of_fold.json").write_text(json.dumps(record))
    return active, version_at(project, newer, active=False, oof_f1=0.9)


def test_on_labels_the_active_version_never_saw_a_gap_within_chance_promotes(
    project, tiny_artifact, tmp_path, settings
):
    # 2 of 12 disagreements, all won by the active version: 2 <= 1.645 * sqrt(2), within chance.
    # The new version trained on those 12 labels, which its out-of-fold answers cannot show.
    settings.DDI_PROMOTION_MIN_HELD_OUT = 5
    active, new = _held_out_labels_and_a_newer_version(
        project, tiny_artifact, tmp_path, n=12, flipped=2
    )
    run = Run.objects.create(project=project, kind=Run.Kind.TRAIN)

    assert decide_promotion(run=run, model_version=new) is True

    new.refresh_from_db()
    assert "not worse beyond chance (2 labels only v" in new.promotion_decision
    assert f"v{new.number} learned those labels" in new.promotion_decision
    active.refresh_from_db()
    assert not active.is_active and new.is_active
    run.refresh_from_db()
    assert (run.result["only_previous_right"], run.result["only_new_right"]) == (2, 0)


def test_on_labels_the_active_version_never_saw_a_gap_beyond_chance_is_refused(
    project, tiny_artifact, tmp_path, settings
):
    # 5 of 12 disagreements, all won by the active version: 5 > 1.645 * sqrt(5) = 3.7.
    settings.DDI_PROMOTION_MIN_HELD_OUT = 5
    active, new = _held_out_labels_and_a_newer_version(
        project, tiny_artifact, tmp_path, n=12, flipped=5
    )
    run = Run.objects.create(project=project, kind=Run.Kind.TRAIN)

    assert decide_promotion(run=run, model_version=new) is False

    new.refresh_from_db()
    assert "worse beyond chance (5 labels only v" in new.promotion_decision
    assert new.promotion_decision.endswith("the active version stays")
    active.refresh_from_db()
    assert active.is_active


def test_an_admin_can_force_a_worse_version(project, tiny_artifact, human_labels_from):
    human_labels_from(tiny_artifact)
    version_at(project, tiny_artifact, active=True, oof_f1=0.9)
    new = version_at(project, tiny_artifact, active=False, oof_f1=0.1)
    run = Run.objects.create(project=project, kind=Run.Kind.TRAIN, params={"force_promote": True})

    assert decide_promotion(run=run, model_version=new) is True
    assert new.promotion_decision.startswith("promoted: forced")


def test_promotion_reads_at_most_the_configured_number_of_labels(
    project, tiny_artifact, human_labels_from, settings
):
    settings.DDI_PROMOTION_MAX_LABELS = 10
    human_labels_from(tiny_artifact)

    assert len(human_label_pairs(project=project)) == 10


def test_pseudo_labels_are_used_only_above_the_threshold_and_never_where_a_reviewer_acted(
    project,
):
    rita = UserFactory(username="rita")
    interactions = make_interactions(project, 6)
    seed_labels(interactions[:2])
    active = ModelVersionFactory(project=project, is_active=True)
    confident, unsure, unclear, rejected, *_ = interactions[2:]
    for interaction, confidence in ((confident, 0.99), (unsure, 0.6), (unclear, 0.99)):
        PredictionFactory(interaction=interaction, model_version=active, confidence=confidence)
    PredictionFactory(interaction=rejected, model_version=active, confidence=0.99)
    Label.objects.create(
        interaction=unclear, status=Label.Status.UNCLEAR, source=Label.Source.REVIEW, author=rita
    )
    # The reviewer changed the class and then undid it: no label left, but a review happened.
    LabelEvent.objects.create(
        interaction=rejected,
        actor=rita,
        action=LabelEvent.Action.UNDO,
        source=Label.Source.REVIEW,
        version=2,
    )

    without = gather_training_examples(project=project)
    with_pseudo = gather_training_examples(project=project, include_pseudo_labels_above=0.9)

    assert without.counts["pseudo"] == 0
    assert without.counts["total"] == 2
    assert with_pseudo.counts["pseudo"] == 1
    assert with_pseudo.examples[-1].text == confident.blinded_text
    assert Prediction.objects.count() == 4


def test_cancelling_during_training_ends_the_run_cancelled(project, labeled, tiny):
    run = start_train_run(project=project, params=FAST)
    run = claim_run(run_id=run.pk, owner="me", kinds=(Run.Kind.TRAIN,))
    Run.objects.filter(pk=run.pk).update(cancel_requested=True)

    with pytest.raises(RunCancelled):
        train_for_run(run=run)

    version = ModelVersion.objects.get(project=project)
    assert version.status == ModelVersion.Status.FAILED
    assert version.promotion_decision == "training cancelled"


def test_a_queued_run_cancelled_before_it_starts_never_trains(project, labeled, tiny):
    run = start_train_run(project=project, params=FAST)
    Run.objects.filter(pk=run.pk).update(cancel_requested=True)

    run = run_training_job(run_id=run.pk, enqueue=False)

    assert run.state == Run.State.CANCELLED
    assert not ModelVersion.objects.exists()


def test_a_second_training_of_the_project_waits_for_the_first(project, labeled, tiny):
    run = start_train_run(project=project, params=FAST)
    if connection.vendor == "postgresql":
        # Another worker (another database session) holds the project's training lock.
        name = connection.settings_dict["NAME"]
        with psycopg.connect(
            f"host=127.0.0.1 user=postgres dbname={name}", autocommit=True
        ) as other:
            other.execute("SELECT pg_advisory_lock(7314001, %s)", [project.pk])
            with pytest.raises(RetryLater):
                run_training_job(run_id=run.pk, enqueue=False)
    else:
        Run.objects.create(
            project=project, kind=Run.Kind.TRAIN, state="running", heartbeat_at=timezone.now()
        )
        with pytest.raises(RetryLater):
            run_training_job(run_id=run.pk, enqueue=False)
    run.refresh_from_db()
    assert run.state == Run.State.QUEUED
    assert "waiting" in run.stage


def test_a_retrain_trains_then_pseudolabels_with_the_new_version(project, labeled, tiny):
    make_interactions(project, 10, start=24)
    retrain = start_retrain_run(project=project, params=FAST)

    retrain = run_training_job(run_id=retrain.pk, enqueue=False)
    child = retrain.children.get()
    assert retrain.state == Run.State.RUNNING
    assert child.model_version == retrain.model_version
    child = run_pseudolabel_inline(run_id=child.pk)

    retrain.refresh_from_db()
    assert child.state == Run.State.SUCCEEDED
    assert retrain.state == Run.State.SUCCEEDED
    assert retrain.result["pseudolabel_run"] == child.pk
    assert Prediction.objects.filter(model_version=retrain.model_version).count() == 34


def test_a_redelivered_run_whose_version_is_ready_is_not_retrained(project, labeled, tiny):
    run = run_training_job(run_id=start_train_run(project=project, params=FAST).pk, enqueue=False)
    Run.objects.filter(pk=run.pk).update(state=Run.State.QUEUED)

    again = run_training_job(run_id=run.pk, enqueue=False)

    assert again.state == Run.State.SUCCEEDED
    assert ModelVersion.objects.count() == 1
    assert again.attempts == 2


def test_progress_names_the_member_in_training_and_the_time_left():
    from annotations.services.jobs.training import _ProgressWriter
    from modeling.training import TrainProgress

    writer = _ProgressWriter(run_id=0)
    writer.first_step = 1
    writer.started -= 10.0  # ten seconds for the first ten steps
    stage = writer._stage(
        TrainProgress(epoch=3, step=10, total_steps=70, loss=0.25, member=2, members=5),
        writer.started + 10.0,
    )
    assert stage == "training member 2 of 5, epoch 3 (loss 0.250), about 1 min 00 s left"


def test_the_demos_first_model_is_forced_and_says_it_is_below_the_floor(
    project, tiny_artifact, settings
):
    from annotations.services.jobs.starting import start_retrain_run

    settings.DDI_PROMOTION_MIN_MACRO_F1 = 0.6
    new = version_at(project, tiny_artifact, active=False, oof_f1=0.45)
    run = start_retrain_run(
        project=project,
        params={"force_promote": True},
        idempotency_key=f"demo:first-model:{project.pk}",
        enqueue=False,
    )
    assert decide_promotion(run=run, model_version=new) is True
    assert new.promotion_decision == (
        "promoted: forced by setup_demo (the demo's first model) "
        "(out-of-fold macro-F1 0.450, below the floor 0.60)"
    )
