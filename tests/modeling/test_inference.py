"""Predictor: dedup, order, streaming, safety of artifacts, int8 gating."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from modeling import inference
from modeling.artifacts import ArtifactError, update_model_json
from modeling.inference import Predictor
from modeling.quantization import measure_int8_agreement


def test_dedup_gives_the_same_result_as_scoring_each_text_alone_in_input_order(tiny_model):
    result, examples = tiny_model
    predictor = Predictor.load(result.artifact_dir)
    distinct = sorted({e.text for e in examples}, key=len)
    texts = [distinct[i % len(distinct)] for i in (5, 0, 5, 3, 0, 1, 5, 2)] + ["A short one."]
    batched = predictor.predict_batch(texts)
    alone = np.stack([predictor.predict_batch([t])[0] for t in texts])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    assert np.array_equal(batched[0], batched[2])


def test_streams_a_generator_in_windows_with_bounded_lookahead(tiny_model, monkeypatch):
    result, examples = tiny_model
    monkeypatch.setattr(inference, "WINDOW_SIZE", 4)
    predictor = Predictor.load(result.artifact_dir)
    consumed = []

    def texts():
        for i in range(10):
            consumed.append(i)
            yield examples[i % len(examples)].text

    stream = predictor.predict_proba(texts(), batch_size=3)
    first = next(stream)
    assert len(consumed) == 4  # one window read, not the whole input
    rest = list(stream)
    assert len(rest) == 9 and first.dtype == np.float32
    expected = predictor.predict_batch([examples[i % len(examples)].text for i in range(10)])
    np.testing.assert_allclose(np.stack([first, *rest]), expected, atol=1e-6)


def test_empty_input_gives_empty_output(tiny_model):
    predictor = Predictor.load(tiny_model[0].artifact_dir)
    assert predictor.predict_batch([]).shape == (0, 2)


def test_refuses_pickle_files(tiny_model, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model[0].artifact_dir, model_dir)
    (model_dir / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ArtifactError, match="pickle"):
        Predictor.load(model_dir)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(ArtifactError, match=r"model\.json"):
        Predictor.load(tmp_path)


def test_int8_falls_back_to_fp32_until_agreement_is_measured(tiny_model, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model[0].artifact_dir, model_dir)
    with pytest.warns(UserWarning, match="int8 agreement"):
        assert Predictor.load(model_dir, quantize=True).quantized is False
    texts = [e.text for e in tiny_model[1]]
    record = measure_int8_agreement(model_dir, texts)
    assert 0.0 <= record["agreement"] <= 1.0 and record["n_texts"] == len(texts)
    update_model_json(model_dir, int8={**record, "agreement": 1.0})
    predictor = Predictor.load(model_dir, quantize=True)
    assert predictor.quantized is True
    assert predictor.predict_batch(texts).shape == (len(texts), 2)
