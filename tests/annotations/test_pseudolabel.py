"""Pseudo-labeling: exact rows, incremental runs, resume after a crash, caps, cancellation."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest
from django.db.models import Count
from django.utils import timezone

from annotations.exceptions import NoActiveModelVersion
from annotations.models import Prediction, Run, RunChunk
from annotations.services import ml
from annotations.services.jobs import pseudolabel, writer
from annotations.services.jobs.lifecycle import RetryLater, cancel_run
from annotations.services.jobs.pseudolabel import (
    plan_pseudolabel_run,
    process_chunk,
    run_pseudolabel_inline,
)
from annotations.services.jobs.starting import start_pseudolabel_run
from modeling.inference import Predictor
from tests.harness import faults
from tests.harness.data import make_interactions, ready_version


@pytest.fixture
def small_chunks(settings):
    settings.DDI_PSEUDOLABEL_CHUNK_SIZE = 40
    settings.DDI_PSEUDOLABEL_BATCH_SIZE = 16
    return settings


@pytest.fixture
def version(project, tiny_artifact):
    return ready_version(project, tiny_artifact)


def assert_exact(version, interactions):
    """One prediction per interaction, equal to the Predictor's own output."""
    predictor = Predictor.load(tiny_artifact_path(version))
    rows = {p.interaction_id: p for p in Prediction.objects.filter(model_version=version)}
    assert sorted(rows) == sorted(i.pk for i in interactions)
    scores = predictor.score([i.blinded_text for i in interactions])
    probs = scores.probabilities
    # float32 rounding: a text scored in another batch (another padded length) can differ in the
    # last bit on some CPUs' kernels (seen: 6e-8), so "equal" means within 1e-6.
    for n, (interaction, expected) in enumerate(zip(interactions, probs, strict=True)):
        row = rows[interaction.pk]
        ranked = np.sort(expected.astype(np.float64))
        assert row.predicted_class == predictor.classes[int(expected.argmax())]
        # The calibrated confidence, not the top probability; uncertainty is its complement.
        assert row.confidence == pytest.approx(float(scores.confidence[n]), abs=1e-5)
        assert row.uncertainty == pytest.approx(1.0 - row.confidence, abs=1e-9)
        assert row.signals["novelty"] == pytest.approx(float(scores.novelty[n]), abs=1e-4)
        assert row.margin == pytest.approx(float(ranked[-1] - ranked[-2]), abs=1e-6)
        assert row.probabilities == pytest.approx(expected.astype(np.float64).tolist(), abs=1e-6)


def tiny_artifact_path(version):
    return version.artifact_path


def test_a_run_writes_exactly_one_correct_prediction_per_interaction(
    project, version, small_chunks
):
    interactions = make_interactions(project, 150)
    run = start_pseudolabel_run(project=project)
    assert run.model_version == version

    run = run_pseudolabel_inline(run_id=run.pk)

    assert run.state == Run.State.SUCCEEDED
    assert run.progress_done == run.progress_total == 150
    assert run.chunks.count() == math.ceil(150 / 40)
    assert run.result["predictions_written"] == 150
    assert_exact(version, interactions)


def test_a_second_run_predicts_only_interactions_without_a_prediction(
    project, version, small_chunks
):
    make_interactions(project, 50)
    run_pseudolabel_inline(run_id=start_pseudolabel_run(project=project).pk)
    interactions = make_interactions(project, 30, start=50)

    run = run_pseudolabel_inline(run_id=start_pseudolabel_run(project=project).pk)

    assert run.progress_total == run.progress_done == 30
    assert_exact(version, interactions)


def test_a_chunk_killed_after_one_batch_resumes_from_its_cursor(
    project, version, small_chunks, monkeypatch
):
    interactions = make_interactions(project, 40)
    run = start_pseudolabel_run(project=project)
    [chunk_id] = plan_pseudolabel_run(run_id=run.pk, enqueue=False)
    calls = []

    def die_on_second_batch(ids):
        calls.append(ids)
        if len(calls) == 2:
            raise SystemExit("simulated SIGKILL")

    faults.before_each_batch(die_on_second_batch, patch=monkeypatch.setattr)
    with pytest.raises(SystemExit):
        process_chunk(chunk_id=chunk_id)
    chunk = RunChunk.objects.get(pk=chunk_id)
    assert chunk.state == RunChunk.State.RUNNING
    assert chunk.rows_written == 16
    assert chunk.cursor == interactions[15].pk
    # The dead worker's lease expires; the redelivered message takes the chunk over.
    RunChunk.objects.filter(pk=chunk_id).update(lease_expires_at=timezone.now())
    monkeypatch.undo()

    assert process_chunk(chunk_id=chunk_id).status == "done"

    run.refresh_from_db()
    assert run.state == Run.State.SUCCEEDED
    assert run.progress_done == 40
    assert RunChunk.objects.get(pk=chunk_id).attempts == 2
    assert_exact(version, interactions)


def test_a_redelivered_chunk_waits_while_a_live_worker_holds_its_lease(
    project, version, small_chunks
):
    make_interactions(project, 10)
    run = start_pseudolabel_run(project=project)
    [chunk_id] = plan_pseudolabel_run(run_id=run.pk, enqueue=False)
    RunChunk.objects.filter(pk=chunk_id).update(
        state=RunChunk.State.RUNNING,
        lease_owner="other-worker",
        lease_expires_at=timezone.now() + timedelta(seconds=30),
    )

    with pytest.raises(RetryLater):
        process_chunk(chunk_id=chunk_id)
    assert not Prediction.objects.exists()


def test_a_finished_chunk_delivered_again_writes_nothing(project, version, small_chunks):
    make_interactions(project, 10)
    run = run_pseudolabel_inline(run_id=start_pseudolabel_run(project=project).pk)
    chunk = run.chunks.get()

    assert process_chunk(chunk_id=chunk.pk).status == "skipped"
    assert Prediction.objects.count() == 10
    dupes = Prediction.objects.values("interaction").annotate(n=Count("id")).filter(n__gt=1)
    assert not dupes.exists()


def test_a_chunk_started_too_often_fails_the_run_with_a_readable_message(
    project, version, small_chunks
):
    make_interactions(project, 10)
    run = start_pseudolabel_run(project=project)
    [chunk_id] = plan_pseudolabel_run(run_id=run.pk, enqueue=False)
    RunChunk.objects.filter(pk=chunk_id).update(
        state=RunChunk.State.RUNNING,
        attempts=small_chunks.DDI_MAX_ATTEMPTS,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )

    assert process_chunk(chunk_id=chunk_id).status == "failed"

    run.refresh_from_db()
    assert run.state == Run.State.FAILED
    assert "giving up" in run.error
    assert f"DDI_MAX_ATTEMPTS={small_chunks.DDI_MAX_ATTEMPTS}" in run.error


def test_cancelling_a_running_run_stops_it_before_the_next_batch(project, version, small_chunks):
    make_interactions(project, 30)
    run = start_pseudolabel_run(project=project)
    [chunk_id] = plan_pseudolabel_run(run_id=run.pk, enqueue=False)

    cancel_run(run=run)
    outcome = process_chunk(chunk_id=chunk_id)

    run.refresh_from_db()
    assert outcome.status == "skipped" or outcome.status == "cancelled"
    assert run.state == Run.State.CANCELLED
    assert not Prediction.objects.exists()


def test_starting_twice_for_the_same_version_returns_the_active_run(project, version):
    first = start_pseudolabel_run(project=project)
    second = start_pseudolabel_run(project=project, model_version=version)
    assert first.pk == second.pk
    assert Run.objects.filter(kind=Run.Kind.PSEUDOLABEL).count() == 1


def test_pseudolabeling_without_an_active_version_is_refused(project):
    with pytest.raises(NoActiveModelVersion, match="train one first"):
        start_pseudolabel_run(project=project)


def test_a_missing_model_folder_fails_the_run_with_its_path(project, tmp_path, small_chunks):
    make_interactions(project, 5)
    ready_version(project, tmp_path / "gone")
    run = run_pseudolabel_inline(run_id=start_pseudolabel_run(project=project).pk)
    assert run.state == Run.State.FAILED
    assert "gone" in run.error
    assert "chunk 0" in run.error


def test_the_run_succeeds_only_when_the_last_chunk_is_done(project, version, small_chunks):
    make_interactions(project, 80)
    run = start_pseudolabel_run(project=project)
    first, second = plan_pseudolabel_run(run_id=run.pk, enqueue=False)

    process_chunk(chunk_id=second)
    run.refresh_from_db()
    assert run.state == Run.State.RUNNING
    process_chunk(chunk_id=first)
    run.refresh_from_db()
    assert run.state == Run.State.SUCCEEDED
    assert run.progress_done == 80


def test_a_project_with_nothing_to_predict_succeeds_at_once(project, version):
    run = run_pseudolabel_inline(run_id=start_pseudolabel_run(project=project).pk)
    assert run.state == Run.State.SUCCEEDED
    assert run.progress_total == 0


def test_a_prediction_written_by_someone_else_mid_batch_is_kept_and_not_duplicated(
    project, version, small_chunks, monkeypatch
):
    """The direct COPY hits the unique constraint; the batch falls back to ON CONFLICT."""
    interactions = make_interactions(project, 30)
    run = start_pseudolabel_run(project=project)
    [chunk_id] = plan_pseudolabel_run(run_id=run.pk, enqueue=False)
    original = writer.ScoreCache.lookup
    raced = interactions[3]

    def lookup_then_race(self, texts):
        found = original(self, texts)
        if not Prediction.objects.filter(interaction=raced).exists():
            value = found[raced.blinded_text]
            Prediction.objects.create(
                interaction=raced,
                model_version=version,
                predicted_class=value.predicted_class,
                confidence=value.confidence,
                margin=value.margin,
                probabilities=value.probabilities,
                uncertainty=value.uncertainty,
                signals=value.signals,
            )
        return found

    monkeypatch.setattr(writer.ScoreCache, "lookup", lookup_then_race)

    assert process_chunk(chunk_id=chunk_id) == pseudolabel.ChunkOutcome("done", 29)

    assert Prediction.objects.filter(model_version=version).count() == 30
    assert RunChunk.objects.get(pk=chunk_id).rows_written == 29
    assert_exact(version, interactions)


def test_each_distinct_text_is_scored_once_per_worker_across_batches_and_chunks(
    project, version, small_chunks, monkeypatch
):
    interactions = make_interactions(project, 120)  # 6 patterns, 3 chunks, 8 batches
    monkeypatch.setattr(ml, "_PREDICTORS", {})  # a fresh worker process
    scored: list[str] = []
    predictor = pseudolabel.get_predictor(version)
    original = predictor.score

    def counting(texts, **kwargs):
        scored.extend(texts)
        return original(texts, **kwargs)

    monkeypatch.setattr(predictor, "score", counting)

    run = run_pseudolabel_inline(run_id=start_pseudolabel_run(project=project).pk)

    assert run.state == Run.State.SUCCEEDED
    assert sorted(scored) == sorted({i.blinded_text for i in interactions})
    assert_exact(version, interactions)


def test_the_score_cache_keeps_only_its_most_recently_used_texts(version):
    cache = writer.ScoreCache(pseudolabel.get_predictor(version), max_entries=2)
    cache.lookup({"DRUG_A one DRUG_B", "DRUG_A two DRUG_B"})
    cache.lookup({"DRUG_A one DRUG_B"})  # most recent now
    cache.lookup({"DRUG_A three DRUG_B"})

    assert list(cache._values) == ["DRUG_A one DRUG_B", "DRUG_A three DRUG_B"]


def test_the_inference_backend_is_the_setting_passed_to_the_predictor(
    version, settings, monkeypatch
):
    monkeypatch.setattr(ml, "_PREDICTORS", {})  # a fresh worker process
    settings.DDI_INFERENCE_BACKEND = "tensorrt"
    with pytest.raises(ValueError, match="unknown inference backend 'tensorrt'"):
        ml.get_predictor(version)
    settings.DDI_INFERENCE_BACKEND = "torch"
    assert ml.get_predictor(version).backend == "torch"
