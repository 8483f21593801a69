"""Training: round trip, determinism, N classes, class weighting, cross-fitting, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch.nn import functional as F

from modeling.artifacts import ADAPTER_FILE, HEAD_FILE, MODEL_JSON, OOF_FILE, data_fingerprint
from modeling.batches import collapse_batch, weighted_batch_loss
from modeling.classifier import build_classifier, load_trainable_state
from modeling.committee import assign_folds
from modeling.config import TrainConfig
from modeling.encoding import encode, pad_batch
from modeling.inference import Predictor
from modeling.training import class_weights, train
from modeling.uncertainty import direction_twin
from tests.modeling.conftest import make_examples, tiny_config

FIVE = ["mechanism", "effect", "advise", "int", "negative"]


def test_saved_committee_reproduces_the_mean_probabilities_of_its_members(tiny_model):
    result, examples = tiny_model
    texts = [e.text for e in examples]
    info = json.loads((result.artifact_dir / MODEL_JSON).read_text())
    config = TrainConfig.from_dict(info["train_config"])
    members = info["committee"]["members"]
    assert len(members) == result.metrics["folds"] == 5
    # The weights as they were at the end of training, without merging: the reference.
    expected = []
    for name in members:
        _, model = build_classifier(config, 2)
        folder = result.artifact_dir / name
        state = load_file(str(folder / ADAPTER_FILE))
        state.update({f"head.{k}": v for k, v in load_file(str(folder / HEAD_FILE)).items()})
        load_trainable_state(model, state)
        model.eval()
        with torch.inference_mode():
            ids, mask = pad_batch(encode(_tokenizer(), texts, config.max_length), 0)
            expected.append(torch.softmax(model(ids, mask), dim=-1).numpy())
    first = Predictor.load(result.artifact_dir).predict_batch(texts)
    second = Predictor.load(result.artifact_dir).predict_batch(texts)  # the round trip
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, np.mean(expected, axis=0), atol=1e-5)
    assert first.dtype == np.float32 and first.shape == (len(texts), 2)
    scores = Predictor.load(result.artifact_dir).score(texts)
    np.testing.assert_array_equal(scores.probabilities, first)
    np.testing.assert_allclose(scores.uncertainty, 1.0 - scores.confidence)


def _tokenizer():
    from modeling.backbones import TINY_RANDOM_BERT, load_backbone

    return load_backbone(TINY_RANDOM_BERT)[0]


def test_model_json_records_what_a_model_version_needs(tiny_model):
    result, examples = tiny_model
    info = json.loads((result.artifact_dir / MODEL_JSON).read_text())
    assert info["backbone"] == "tiny-random-bert"
    assert info["classes"] == ["Synergistic", "Antagonistic"]
    assert info["placeholders"] == {"a": "DRUG_A", "b": "DRUG_B", "other": "DRUG_OTHER"}
    assert info["data_fingerprint"] == data_fingerprint((e.text, e.label) for e in examples)
    assert {"torch", "transformers", "peft"} <= set(info["library_versions"])
    for key in (
        "accuracy",
        "macro_f1",
        "per_class",
        "confusion_matrix",
        "evaluated_on",
        "ece",
        "ece_softmax",
        "in_sample",
        "folds",
        "confidence_model",
        "n_train",
        "train_seconds",
        "epochs_run",
    ):
        assert key in result.metrics, key
    assert result.metrics["evaluated_on"] == "out-of-fold"
    json.dumps(result.metrics)
    # Adapters, heads and the n-grams of the labelled texts: no copy of the backbone.
    files = [p for p in result.artifact_dir.rglob("*") if p.is_file()]
    assert not any(p.suffix in {".bin", ".pt"} or p.name == "model.safetensors" for p in files)
    assert sum(p.stat().st_size for p in files) < 1_000_000


def test_same_seed_gives_identical_probabilities(tmp_path):
    examples = make_examples(["x", "y"], per_class=8)
    dirs = [tmp_path / "one", tmp_path / "two"]
    for out_dir in dirs:
        train(examples, classes=["x", "y"], config=tiny_config(epochs=2), out_dir=out_dir)
    texts = [e.text for e in examples]
    first, second = (Predictor.load(d).predict_batch(texts) for d in dirs)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("classes", [["low", "mid", "high"], FIVE])
def test_trains_any_number_of_classes(tmp_path, classes):
    examples = make_examples(classes, per_class=6)
    progress = []
    result = train(
        examples,
        classes=classes,
        config=tiny_config(epochs=2),
        out_dir=tmp_path,
        on_progress=progress.append,
    )
    assert np.array(result.metrics["confusion_matrix"]).shape == (len(classes), len(classes))
    assert set(result.metrics["per_class"]) == set(classes)
    assert progress[-1].step == progress[-1].total_steps
    probs = Predictor.load(tmp_path).predict_batch([e.text for e in examples[:4]])
    assert probs.shape == (4, len(classes))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_class_weights_are_inverse_frequency():
    weights = class_weights([0, 0, 0, 1], num_classes=3)
    assert weights.tolist() == pytest.approx([4 / 6, 2.0, 1.0])


def test_a_collapsed_batch_has_the_loss_of_the_batch_with_its_copies():
    # Batch of 7 examples, 3 distinct (text, label) pairs; the same label twice with another text.
    groups = [0, 1, 0, 2, 1, 0, 2]
    rows, copies = collapse_batch([0, 1, 2, 3, 4, 5, 6], groups)
    assert rows == [0, 1, 3] and copies == [3, 2, 2]
    generator = torch.Generator().manual_seed(0)
    distinct_logits = torch.randn(3, 2, generator=generator)
    distinct_targets = torch.tensor([0, 1, 1])
    expanded = [0, 1, 0, 2, 1, 0, 2]  # row of the distinct batch for each original example
    weight = torch.tensor([0.7, 1.9])
    for class_weight in (None, weight):
        collapsed = weighted_batch_loss(
            distinct_logits, distinct_targets, torch.tensor(copies), class_weight
        )
        plain = F.cross_entropy(
            distinct_logits[expanded], distinct_targets[expanded], weight=class_weight
        )
        assert collapsed.item() == pytest.approx(plain.item(), rel=1e-6)


def test_unbalanced_training_with_and_without_weighting_runs(tmp_path):
    examples = make_examples(["common", "rare"], per_class=12)[:15]  # 12 common, 3 rare
    for weighting in (True, False):
        result = train(
            examples,
            classes=["common", "rare"],
            config=tiny_config(epochs=1, class_weighting=weighting),
            out_dir=tmp_path / str(weighting),
        )
        assert result.metrics["n_train"] == 15


def test_out_of_fold_predictions_never_come_from_a_member_that_saw_the_text():
    texts = [f"t{i % 7}" for i in range(40)] + [f"u{i % 5}" for i in range(20)]
    labels = np.asarray([0] * 40 + [1] * 20)
    folds, note = assign_folds(labels, texts, folds=5, seed=3)
    assert note == "" and set(folds.tolist()) == set(range(5))
    for fold in range(5):
        held = {texts[i] for i in range(len(texts)) if folds[i] == fold}
        trained = {texts[i] for i in range(len(texts)) if folds[i] != fold}
        assert held and held.isdisjoint(trained)
        assert {labels[i] for i in range(len(texts)) if folds[i] == fold} == {0, 1}


def test_fewer_distinct_texts_than_folds_lowers_the_folds_and_says_so(tmp_path):
    folds, note = assign_folds(np.asarray([0, 0, 0, 1, 1, 1]), list("aabcdd"), 5, seed=1)
    assert set(folds.tolist()) == {0, 1} and "2 folds instead of 5" in note
    folds, note = assign_folds(np.asarray([0, 0, 1, 1]), ["a", "a", "b", "c"], 5, seed=1)
    assert set(folds.tolist()) == {-1} and note.startswith("no cross-fitting")
    # And training says so in its metrics instead of failing.
    examples = [e for e in make_examples(["x", "y"], per_class=6)]
    single = [examples[0]] * 3 + examples[6:]  # class x has one distinct text
    result = train(single, classes=["x", "y"], config=tiny_config(epochs=1), out_dir=tmp_path)
    assert result.metrics["folds"] == 0
    assert result.metrics["cross_fit_note"].startswith("no cross-fitting")
    assert result.metrics["evaluated_on"].startswith("in-sample")
    assert Predictor.load(tmp_path).score([examples[0].text]).confidence.shape == (1,)


def test_labels_outside_classes_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="not in classes"):
        train(
            make_examples(["a", "b"], 2), classes=["a", "c"], config=tiny_config(), out_dir=tmp_path
        )


class Killed(Exception):
    """Raised from a progress callback: the process died at that step."""


def kill_then_resume(examples, config, tmp_path, kill_when) -> tuple[list, list[int]]:
    """Train straight; train again killed when ``kill_when(progress)``; resume the killed run.

    Returns (the straight run's progress, the resumed run's steps) and asserts that the resumed
    model's adapter and head tensors equal the straight run's exactly.
    """
    straight = []
    train(
        examples,
        classes=["x", "y"],
        config=config,
        out_dir=tmp_path / "straight",
        on_progress=straight.append,
    )

    def killer(progress):
        if kill_when(progress):
            raise Killed

    with pytest.raises(Killed):
        train(
            examples,
            classes=["x", "y"],
            config=config,
            out_dir=tmp_path / "resumed",
            checkpoint_dir=tmp_path / "ckpt",
            on_progress=killer,
        )
    assert (tmp_path / "ckpt" / "checkpoint.safetensors").is_file()
    steps = []
    train(
        examples,
        classes=["x", "y"],
        config=config,
        out_dir=tmp_path / "resumed",
        checkpoint_dir=tmp_path / "ckpt",
        on_progress=lambda p: steps.append(p.step),
    )
    members = json.loads((tmp_path / "straight" / MODEL_JSON).read_text())["committee"]["members"]
    for folder in ("", *members):
        for name in (ADAPTER_FILE, HEAD_FILE):
            expected = load_file(str(tmp_path / "straight" / folder / name))
            resumed = load_file(str(tmp_path / "resumed" / folder / name))
            assert expected.keys() == resumed.keys()
            for key in expected:
                assert torch.equal(expected[key], resumed[key]), (folder, key)
    return straight, steps


def test_killed_training_resumes_from_checkpoint_to_the_same_weights(tmp_path):
    examples = make_examples(["x", "y"], per_class=10)
    config = tiny_config(epochs=3, checkpoint_every_steps=2)

    _, steps = kill_then_resume(examples, config, tmp_path, lambda p: p.step == 5)

    assert steps[0] == 5  # resumed after the checkpoint of step 4, not from scratch


def test_checkpoint_of_another_run_is_refused(tmp_path):
    from modeling.checkpoints import CheckpointMismatch

    examples = make_examples(["x", "y"], per_class=4)
    config = tiny_config(epochs=1, checkpoint_every_steps=1)
    train(
        examples,
        classes=["x", "y"],
        config=config,
        out_dir=tmp_path / "m",
        checkpoint_dir=tmp_path / "ckpt",
    )
    with pytest.raises(CheckpointMismatch):
        train(
            examples,
            classes=["x", "y"],
            config=tiny_config(epochs=2, checkpoint_every_steps=1),
            out_dir=tmp_path / "m2",
            checkpoint_dir=tmp_path / "ckpt",
        )


def test_training_killed_in_a_later_member_resumes_there_to_the_same_weights(tmp_path):
    from modeling.checkpoints import peek_checkpoint

    examples = make_examples(["x", "y"], per_class=10)
    config = tiny_config(epochs=3, checkpoint_every_steps=1)
    stored = []

    def near_the_end(progress):
        # One bar over all members: this is only true while the last member trains.
        if progress.step == progress.total_steps - 1:
            stored.append(peek_checkpoint(tmp_path / "ckpt"))
            return True
        return False

    straight, steps = kill_then_resume(examples, config, tmp_path, near_the_end)

    (checkpoint,) = stored
    assert checkpoint.phase == 4 and checkpoint.step > checkpoint.phase_start_step > 0
    assert steps[0] == checkpoint.step + 1  # finished members reloaded, not retrained
    assert steps[-1] == straight[-1].step == straight[-1].total_steps
    straight_json = json.loads((tmp_path / "straight" / MODEL_JSON).read_text())
    resumed_json = json.loads((tmp_path / "resumed" / MODEL_JSON).read_text())
    assert (
        straight_json["metrics"]["confusion_matrix"] == resumed_json["metrics"]["confusion_matrix"]
    )
    assert (
        straight_json["committee"]["confidence_model"]
        == resumed_json["committee"]["confidence_model"]
    )


@pytest.mark.slow
def test_a_sentence_unlike_any_labelled_one_is_more_uncertain_than_a_labelled_one(tmp_path):
    examples = make_examples(["Synergistic", "Antagonistic"], per_class=12)
    # Long enough for the tiny model to fit its labelled texts (their confidence is its
    # in-sample accuracy): uncertainty 0.02 on the labelled text, 0.39 on the novel one (25
    # epochs at 1e-2: 0.02 and 0.28, in 2.5x the CPU time).
    config = tiny_config(epochs=10, learning_rate=2e-2)
    train(examples, classes=["Synergistic", "Antagonistic"], config=config, out_dir=tmp_path)
    predictor = Predictor.load(tmp_path)
    novel = "Plasma levels stayed unchanged throughout a small crossover study."
    scores = predictor.score([examples[0].text, novel])
    assert scores.seen.tolist() == [1.0, 0.0]
    assert scores.novelty[0] == 0.0 and scores.novelty[1] > 0.5
    assert scores.uncertainty[1] > scores.uncertainty[0]


def test_the_confidence_model_is_also_fitted_on_held_out_twins_of_known_class(tiny_model):
    result, examples = tiny_model
    # Twins that are not labelled texts: "lower" -> "higher" and "reduce" -> "enhance" (4 effects
    # each). "increase" <-> "decrease" twins are labelled texts; "raise" and "boost" have none.
    expected = {t for t in (direction_twin(e.text) for e in examples) if t} - {
        e.text for e in examples
    }
    assert len(expected) == 8
    fit = json.loads((result.artifact_dir / OOF_FILE).read_text())["fit_rows"]
    distinct = len({e.text for e in examples})
    assert fit["twin_rows"] == 8
    assert len(fit["features"]) == len(fit["correct"]) == distinct + 8
    assert result.metrics["confidence_fit"] == {"texts": distinct, "direction_twins": 8}


def test_the_direction_twin_swaps_every_direction_word_and_keeps_case():

    assert direction_twin(
        "DRUG_A may decrease the excretion rate of DRUG_B which could result in a higher serum level."
    ) == (
        "DRUG_A may increase the excretion rate of DRUG_B which could result in a lower serum level."
    )
    assert direction_twin("Increased exposure.") == "Decreased exposure."
    assert direction_twin("The risk of a hypersensitivity reaction.") is None
