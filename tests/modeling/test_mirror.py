"""Direction evidence beyond the committee (modeling.mirror): the labelled mirror sentence and
direction words that point both ways."""

from __future__ import annotations

import numpy as np
import pytest

from modeling.cli import iter_scores
from modeling.inference import Predictor
from modeling.mirror import direction_evidence, evidence_signals, mirror_posterior
from modeling.reasons import reasons
from modeling.uncertainty import LabelledSet, direction_twin, mixed_directions

EXCRETION = (
    "DRUG_A may decrease the excretion rate of DRUG_B which could result in a higher serum level."
)


def _text(verb: str, effect: str) -> str:
    return f"DRUG_A may {verb} the {effect} activities of DRUG_B."


def test_direction_words_pointing_both_ways_are_found():
    assert mixed_directions(EXCRETION)
    assert mixed_directions(direction_twin(EXCRETION))
    assert not mixed_directions(
        "DRUG_A can cause a decrease in the absorption of DRUG_B resulting in a reduced serum level."
    )
    assert not mixed_directions(_text("increase", "sedative"))
    assert not mixed_directions("The risk of a hypersensitivity reaction.")


def test_the_labelled_set_counts_its_mirror_pairs_and_keeps_them_through_a_round_trip():
    texts = [
        _text("increase", "sedative"),
        _text("decrease", "sedative"),  # its mirror, the opposite class
        _text("increase", "diuretic"),
        _text("decrease", "diuretic"),  # its mirror, the same class (a labelling slip)
        _text("lower", "analgesic"),  # the mirror ("higher") is not labelled
    ]
    labelled = LabelledSet.of(texts, [0, 1, 0, 0, 1])
    assert (labelled.mirror_pairs, labelled.mirror_opposite) == (2, 1)
    assert labelled.mirror_validity == pytest.approx(1.5 / 3)
    assert not labelled.has_mixed
    again = LabelledSet.from_dict(labelled.to_dict())
    assert again == labelled
    # A version saved before the counts existed: no pair, so its mirrors carry no weight.
    old = {k: v for k, v in labelled.to_dict().items() if k in ("labels", "grams")}
    assert LabelledSet.from_dict(old).mirror_validity == 0.5
    assert LabelledSet.of([*texts, EXCRETION], [0, 1, 0, 0, 1, 0]).has_mixed
    # Without labels (a member's training texts) there is nothing to count.
    assert LabelledSet.of(texts).mirror_pairs == 0


def test_the_mirror_and_the_committee_combine_as_two_independent_opinions():
    # The committee says class 0 at 0.67, the mirror class 1 at 0.75: the mirror wins.
    posterior = mirror_posterior(np.asarray([0.67]), np.asarray([0]), np.asarray([1]), 0.75)
    expected = 0.33 * 0.75 / (0.67 * 0.25 + 0.33 * 0.75)
    np.testing.assert_allclose(posterior, [[1 - expected, expected]])
    # Both say class 0: surer than either.
    agree = mirror_posterior(np.asarray([0.84]), np.asarray([0]), np.asarray([0]), 0.75)
    assert agree[0, 0] == pytest.approx(0.84 * 0.75 / (0.84 * 0.75 + 0.16 * 0.25))
    # A mirror with no evidence behind it (0.5) changes nothing.
    none = mirror_posterior(np.asarray([0.9]), np.asarray([1]), np.asarray([0]), 0.5)
    np.testing.assert_allclose(none, [[0.1, 0.9]])


def test_direction_evidence_follows_a_labelled_mirror_and_caps_mixed_directions_at_a_coin_toss():
    labelled_texts = [
        _text("increase", "diuretic"),
        _text("decrease", "diuretic"),
        _text("increase", "analgesic"),
        _text("decrease", "analgesic"),
        _text("decrease", "sedative"),
    ]
    labelled = LabelledSet.of(labelled_texts, [0, 1, 0, 1, 1])
    assert labelled.mirror_validity == pytest.approx(2.5 / 3)
    texts = [
        _text("increase", "sedative"),  # mirror of a labelled class-1 text: class 0
        _text("decrease", "sedative"),  # labelled itself: untouched
        EXCRETION,  # both ways, and no labelled text is
        _text("raise", "sedative"),  # nothing to add
    ]
    probs = np.asarray([[0.2, 0.8], [0.1, 0.9], [0.95, 0.05], [0.7, 0.3]])
    confidence = np.asarray([0.7, 0.99, 0.9, 0.8])
    twins = [direction_twin(t) for t in texts]
    served, out, mirror, mixed = direction_evidence(
        probs, confidence, texts, twins, labelled.label_of(texts), labelled
    )
    assert mirror.tolist() == [0, -1, -1, -1]
    assert mixed.tolist() == [False, False, True, False]
    expected = mirror_posterior(np.asarray([0.7]), np.asarray([1]), np.asarray([0]), 2.5 / 3)
    np.testing.assert_allclose(served[0], expected[0])
    assert served[0].argmax() == 0 and out[0] == pytest.approx(expected[0].max())
    np.testing.assert_allclose(served[1:], probs[1:])
    assert out[1:].tolist() == [0.99, 0.5, 0.8]
    # Once a sentence like it is labelled, the fitted confidence applies again.
    other_mixed = "DRUG_A may reduce the clearance of DRUG_B, giving higher levels."
    with_mixed = LabelledSet.of([*labelled_texts, other_mixed], [0, 1, 0, 1, 1, 0])
    assert with_mixed.has_mixed
    _, out, _, capped = direction_evidence(
        probs, confidence, texts, twins, with_mixed.label_of(texts), with_mixed
    )
    assert not capped.any()  # so the review page no longer says "no labeled sentence does"
    assert out[2] == 0.9


def test_a_trained_committee_serves_the_mirror_of_a_labelled_text_and_says_why(tiny_model):
    result, examples = tiny_model
    predictor = Predictor.load(result.artifact_dir)
    # The toy labels pair "increase X" (Synergistic) with "decrease X" (Antagonistic), 4 effects.
    assert (predictor.labelled.mirror_pairs, predictor.labelled.mirror_opposite) == (4, 4)
    lowered = _text("lower", "sedative")
    assert any(e.text == lowered and e.label == "Antagonistic" for e in examples)
    mirror_text = direction_twin(lowered)  # "may higher the sedative ...": nobody labelled it
    scores = predictor.score([mirror_text, lowered])
    assert scores.mirror.tolist() == [0, -1]  # Synergistic, the opposite of its mirror's label
    committee = predictor.predict_batch([mirror_text, lowered]).argmax(axis=1)
    assert scores.committee_class.tolist() == committee.tolist()
    # The mirror's weight is 0.9 (4.5 / 5): it outweighs what a tiny model can say.
    assert scores.probabilities[0].argmax() == 0
    assert scores.confidence[0] == pytest.approx(float(scores.probabilities[0].max()))
    np.testing.assert_allclose(scores.probabilities[1], predictor.predict_batch([lowered])[0])
    signals = evidence_signals(scores, 0, predictor.classes)
    assert signals["mirror"] == "Synergistic" and signals["mixed"] is False
    why = reasons(0.0, 0.0, 0.0, 1.0, mirror="Synergistic", committee="Antagonistic")
    assert "its mirror sentence (increase/decrease swapped) is labeled" in why[0]
    # The CLI's why_unsure column names direction words pointing both ways.
    ((_, confidence, said),) = list(iter_scores(predictor, [EXCRETION], batch_size=8))
    assert confidence <= 0.5 and "direction words point both ways" in said
