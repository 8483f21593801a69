"""Predictor: dedup, order, streaming, safety of artifacts, removed backends."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from modeling import inference
from modeling.artifacts import ArtifactError
from modeling.backends import resolve_backend
from modeling.cli import main as cli_main
from modeling.inference import Predictor


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


def test_the_removed_torch_int8_backend_is_refused_with_what_to_use_instead(
    tiny_model, tmp_path, capsys
):
    # Measured worse than torch fp32 (README "Inference") and removed; old spellings say so.
    with pytest.raises(ValueError, match=r"torch-int8 backend was removed.*use 'onnx'"):
        resolve_backend("torch-int8")
    with pytest.raises(ValueError, match="torch-int8 backend was removed"):
        Predictor.load(tiny_model[0].artifact_dir, backend="torch-int8")
    with pytest.raises(TypeError, match="quantize"):
        Predictor.load(tiny_model[0].artifact_dir, quantize=True)
    common = ["--model", str(tmp_path), "--input", "in.csv", "--output", "out.csv"]
    for extra in (["--int8"], ["--backend", "torch-int8"]):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["predict", *common, *extra])
        assert exit_info.value.code == 2
        assert "was removed" in capsys.readouterr().err
    assert cli_main(["verify-int8", "--model", str(tmp_path), "--input", "in.csv"]) == 2
    assert "use --backend onnx-int8" in capsys.readouterr().err


@pytest.mark.parametrize("native", [True, False])
def test_torch_bf16_serves_the_same_classes_where_bf16_is_native_and_fp32_elsewhere(
    tiny_model, monkeypatch, native
):
    """bf16 weights where the device runs bf16 natively; elsewhere a warning and fp32 (torch
    would emulate bf16 in scalar code). `native` is forced so both branches run on any CPU."""
    result, examples = tiny_model
    texts = [e.text for e in examples]
    reference = Predictor.load(result.artifact_dir, backend="torch").predict_batch(texts)
    monkeypatch.setattr(inference, "native_bf16", lambda device: native)
    if native:
        predictor = Predictor.load(result.artifact_dir, backend="torch-bf16")
    else:
        with pytest.warns(UserWarning, match="no native bf16"):
            predictor = Predictor.load(result.artifact_dir, backend="torch-bf16")
    members = getattr(predictor, "members", [predictor])
    assert {m.backend for m in members} == {"torch-bf16" if native else "torch"}
    assert {next(m.model.parameters()).dtype for m in members} == {
        torch.bfloat16 if native else torch.float32
    }
    probs = predictor.predict_batch(texts)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs, reference, atol=0.05 if native else 1e-6)
    assert (probs.argmax(1) == reference.argmax(1)).mean() >= 0.95
