"""A labelled text is served as its label says (modeling.uncertainty.follow_labels): the
committee's class there, where it contradicts the label, is one the version itself calls almost
surely wrong, and every duplicate of the sentence would inherit it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from modeling.inference import Predictor
from modeling.uncertainty import follow_labels, text_key


def test_a_contradicted_label_takes_the_seen_accuracy_and_the_rest_keeps_the_committees_shares():
    probs = np.asarray([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.5, 0.5, 0.0]])
    confidence = np.asarray([0.9, 0.997, 0.8, 0.6])
    label_of = np.asarray([2, 1, -2, -1])  # contradicted, agreeing, unlabelled, class unknown
    served, conf = follow_labels(probs, confidence, label_of, seen_accuracy=0.95)
    np.testing.assert_allclose(served[0], [0.05 * 0.7 / 0.9, 0.05 * 0.2 / 0.9, 0.95])
    assert served[0].argmax() == 2 and conf[0] == pytest.approx(0.95)
    np.testing.assert_allclose(served[1:], probs[1:])  # the others unchanged
    np.testing.assert_allclose(conf[1:], confidence[1:])
    assert served.sum(axis=1) == pytest.approx(np.ones(4))


def test_a_version_that_does_not_fit_its_labels_keeps_the_committees_class():
    # seen_accuracy at or below a coin toss on two classes: the version's own number says it
    # does not reproduce its labels, so nothing is overridden (no tie is broken either way).
    for seen in (0.3, 0.5):
        served, conf = follow_labels(
            np.asarray([[0.9, 0.1]]), np.asarray([0.1]), np.asarray([1]), seen_accuracy=seen
        )
        np.testing.assert_allclose(served, [[0.9, 0.1]])
        assert conf[0] == pytest.approx(0.1)


def test_a_trained_committee_serves_a_labelled_sentence_as_labelled_even_where_it_reads_it_wrong(
    tiny_model,
):
    result, examples = tiny_model
    predictor = Predictor.load(result.artifact_dir)
    text = examples[0].text
    committee = int(predictor.predict_batch([text])[0].argmax())
    # The same version, with the other class recorded as this sentence's label (as after a
    # reviewer corrected one row of a pattern the retrained committee still reads the old way).
    labels = dict(predictor.labelled.labels)
    labels[text_key(text)] = 1 - committee
    predictor.labelled = replace(predictor.labelled, labels=labels)
    # A version that fits its labels (the tiny model barely does: its own figure is kept apart).
    predictor.confidence_model = replace(predictor.confidence_model, seen_accuracy=0.96)
    scores = predictor.score([text, text])
    assert scores.probabilities.argmax(axis=1).tolist() == [1 - committee] * 2
    assert scores.confidence.tolist() == pytest.approx([0.96, 0.96])
    assert scores.uncertainty.tolist() == pytest.approx([0.04, 0.04])
    assert scores.committee_class.tolist() == [committee] * 2  # the models' own reading is kept
