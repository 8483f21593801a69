"""ONNX Runtime backends: export round trip, int8 gate, fallbacks, no pickle anywhere."""

from __future__ import annotations

import json
import pickle
import shutil
import sys

import numpy as np
import pytest
import torch

from modeling import onnx_runtime
from modeling.artifacts import update_model_json
from modeling.backends import resolve_backend
from modeling.cli import _build_parser, main
from modeling.export import choose_recheck_margin, export_onnx, measure_onnx_int8_agreement
from modeling.inference import Predictor, top_two_margin
from modeling.onnx_runtime import ONNX_INT8_FIELD, onnx_paths

BACKEND_ENV = "DDI_INFERENCE_BACKEND"
PREDICT = ["predict", "--model", "m", "--input", "in.csv", "--output", "out.csv"]


def _one_member(tiny_model):
    """A committee member's folder: ONNX export and its int8 gate work per model (per member)."""
    return tiny_model[0].artifact_dir / "members" / "0"


@pytest.fixture(scope="module")
def exported_model(tiny_model, tmp_path_factory):
    """A copy of the tiny model version with its ONNX files exported once."""
    model_dir = tmp_path_factory.mktemp("onnx-model") / "model"
    shutil.copytree(_one_member(tiny_model), model_dir)
    export_onnx(model_dir)
    return model_dir


@pytest.fixture
def model_copy(exported_model, tmp_path):
    """A private copy of the exported model version that a test may change."""
    model_dir = tmp_path / "model"
    shutil.copytree(exported_model, model_dir)
    return model_dir


def _texts(tiny_model) -> list[str]:
    """Blinded toy texts plus lengths the export trace never saw (1 word, max_length cut)."""
    texts = [e.text for e in tiny_model[1]]
    return [*texts, "DRUG_A", "DRUG_A " + "increases the effect of DRUG_B " * 20]


def test_onnx_fp32_gives_the_same_probabilities_as_torch_for_any_batch_size(
    tiny_model, exported_model
):
    texts = _texts(tiny_model)
    reference = Predictor.load(exported_model, backend="torch").predict_batch(texts)
    onnx = Predictor.load(exported_model, backend="onnx")
    assert onnx.backend == "onnx" and onnx.model is None and not onnx.quantized
    for batch_size in (1, 3, 64):
        probs = onnx.predict_batch(texts, batch_size=batch_size)
        np.testing.assert_allclose(probs, reference, atol=1e-4)
    assert onnx_paths(exported_model)["fp32"].is_file()
    assert onnx_paths(exported_model)["int8"].is_file()


def test_loading_never_exports_a_folder_without_an_export_is_served_by_torch(tiny_model, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(_one_member(tiny_model), model_dir)
    with pytest.warns(UserWarning, match="no ONNX fp32 export.*export-onnx.*using torch fp32"):
        assert Predictor.load(model_dir, backend="onnx").backend == "torch"
    assert not (model_dir / "onnx").exists()  # inference wrote nothing into the folder
    export_onnx(model_dir)  # the offline step
    assert Predictor.load(model_dir, backend="onnx").backend == "onnx"
    record = json.loads((model_dir / "model.json").read_text())["onnx"]
    assert record["fp32_sha256"] == onnx_runtime.sha256_of(onnx_paths(model_dir)["fp32"])
    assert not list((model_dir / "onnx").glob("*.tmp"))


def test_onnx_int8_is_refused_until_a_measured_agreement_passes_the_gate(tiny_model, model_copy):
    texts = _texts(tiny_model)
    with pytest.warns(UserWarning, match="ONNX int8 agreement with fp32 is None"):
        assert Predictor.load(model_copy, backend="onnx-int8").backend == "onnx"
    record = measure_onnx_int8_agreement(model_copy, texts)
    assert record["n_texts"] == len(texts) and 0.0 <= record["agreement"] <= 1.0
    update_model_json(model_copy, **{ONNX_INT8_FIELD: {**record, "agreement": 0.99}})
    with pytest.warns(UserWarning, match="0.99"):
        refused = Predictor.load(model_copy, backend="onnx-int8")
    assert refused.backend == "onnx" and refused.quantized is False
    thin = {**record, "agreement": 1.0, "n_held_out": 199}  # too few texts to vouch for 99.5%
    update_model_json(model_copy, **{ONNX_INT8_FIELD: thin})
    with pytest.warns(UserWarning, match="1.0 on 199 held-out texts"):
        assert Predictor.load(model_copy, backend="onnx-int8").backend == "onnx"
    update_model_json(model_copy, **{ONNX_INT8_FIELD: {**thin, "n_held_out": 200}})
    accepted = Predictor.load(model_copy, backend="onnx-int8")
    assert accepted.backend == "onnx-int8" and accepted.quantized is True
    assert accepted.predict_batch(texts).shape == (len(texts), 2)


def test_the_int8_cascade_scores_the_texts_under_its_margin_again_with_fp32(tiny_model, model_copy):
    texts = list(dict.fromkeys(_texts(tiny_model)))
    fp32 = Predictor.load(model_copy, backend="onnx").predict_batch(texts)
    alone = Predictor.load(model_copy, backend="onnx-int8", check_gate=False)
    int8 = alone.predict_batch(texts)
    assert alone.recheck is None and alone.rechecked == 0  # the measurement sees int8 alone
    margin = top_two_margin(int8)
    threshold = float(np.median(margin))
    unsure = margin < threshold
    assert 0 < unsure.sum() < len(texts)
    record = measure_onnx_int8_agreement(model_copy, texts)
    gate = {**record, "agreement": 1.0, "recheck_margin": threshold, "n_held_out": 200}
    update_model_json(model_copy, **{ONNX_INT8_FIELD: gate})
    cascade = Predictor.load(model_copy, backend="onnx-int8")
    probs = cascade.predict_batch(texts)
    assert cascade.backend == "onnx-int8" and cascade.rechecked == unsure.sum()
    np.testing.assert_allclose(probs[unsure], fp32[unsure], atol=1e-4)
    np.testing.assert_array_equal(probs[~unsure], int8[~unsure])


def test_the_recheck_margin_is_chosen_on_one_half_of_the_texts_and_scored_on_the_other():
    texts = [f"DRUG_A changes DRUG_B, sentence {i}" for i in range(200)]
    margin = (np.arange(200) + 0.5) / 200
    int8 = np.stack([(1 + margin) / 2, (1 - margin) / 2], axis=1)  # top class 0, this margin
    reference = np.where(margin < 0.2, 1, 0)  # int8 is wrong on every text under 0.2
    fp32 = reference.copy()
    gate = choose_recheck_margin(texts, reference, int8, fp32)
    assert gate["recheck_margin"] == 0.2 and gate["held_out"] is True
    assert gate["agreement"] == gate["choose_agreement"] == 1.0
    assert gate["plain_agreement"] == pytest.approx(0.8)
    assert gate["rechecked_share"] == pytest.approx(0.2)
    assert 50 < gate["n_held_out"] < 150  # the other half's distinct texts
    # A flip no margin reaches counts in the half its text falls in, never in both.
    fp32[150] = reference[150] = 1
    flipped = choose_recheck_margin(texts, reference, int8, fp32)
    assert (flipped["choose_agreement"] < 1.0) != (flipped["agreement"] < 1.0)
    one = choose_recheck_margin(texts[:1], reference[:1], int8[:1], fp32[:1])
    assert one["held_out"] is False and one["recheck_margin"] == 0.05 and one["n_held_out"] == 0
    empty = choose_recheck_margin([], reference[:0], int8[:0], fp32[:0])
    assert empty["agreement"] == 0.0


def test_a_gate_measured_on_another_int8_file_does_not_count(model_copy):
    update_model_json(model_copy, **{ONNX_INT8_FIELD: {"agreement": 1.0, "int8_sha256": "0" * 64}})
    with pytest.warns(UserWarning, match="ONNX int8 agreement"):
        assert Predictor.load(model_copy, backend="onnx-int8").backend == "onnx"


def test_a_tampered_onnx_file_is_not_used(tiny_model, model_copy):
    path = onnx_paths(model_copy)["fp32"]
    path.write_bytes(b"not the exported model")
    with pytest.warns(UserWarning, match="sha256.*not used"):
        predictor = Predictor.load(model_copy, backend="onnx")
    assert predictor.backend == "torch"
    assert path.read_bytes() == b"not the exported model"  # left for the offline re-export
    texts = _texts(tiny_model)
    reference = Predictor.load(model_copy, backend="torch").predict_batch(texts)
    np.testing.assert_allclose(predictor.predict_batch(texts), reference, atol=1e-4)


def test_falls_back_to_torch_with_a_warning_when_onnxruntime_is_missing(
    tiny_model, exported_model, monkeypatch
):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.warns(UserWarning, match="onnxruntime is not installed.*using torch fp32"):
        predictor = Predictor.load(exported_model, backend="onnx-int8")
    assert predictor.backend == "torch" and predictor.model is not None
    assert predictor.predict_batch(_texts(tiny_model)).shape[1] == 2


def test_a_failed_export_says_why_and_leaves_no_file_so_torch_serves(
    tiny_model, tmp_path, monkeypatch
):
    model_dir = tmp_path / "model"
    shutil.copytree(_one_member(tiny_model), model_dir)

    def broken_export(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    with pytest.raises(
        onnx_runtime.OnnxNotAvailable, match="ONNX export failed: exporter exploded"
    ):
        export_onnx(model_dir)
    assert not list((model_dir / "onnx").glob("*"))
    with pytest.warns(UserWarning, match="no ONNX fp32 export.*torch fp32"):
        assert Predictor.load(model_dir, backend="onnx").backend == "torch"


def test_a_committee_is_exported_member_by_member_and_served_by_onnx(tiny_model, tmp_path):
    model_dir = tmp_path / "committee"
    shutil.copytree(tiny_model[0].artifact_dir, model_dir)
    record = export_onnx(model_dir)
    members = json.loads((model_dir / "model.json").read_text())["committee"]["members"]
    assert sorted(record["members"]) == sorted(members)
    texts = _texts(tiny_model)
    reference = Predictor.load(model_dir, backend="torch").predict_batch(texts)
    onnx = Predictor.load(model_dir, backend="onnx")
    assert onnx.backend == "onnx"
    np.testing.assert_allclose(onnx.predict_batch(texts), reference, atol=1e-4)
    gate = measure_onnx_int8_agreement(model_dir, texts)  # each member gated on its own numbers
    assert sorted(gate["members"]) == sorted(members)
    served = Predictor.load(model_dir, backend="onnx-int8")
    for name, member in zip(members, served.members, strict=True):
        record = json.loads((model_dir / name / "model.json").read_text())[ONNX_INT8_FIELD]
        assert record == gate["members"][name] and record["n_texts"] == len(texts)
        assert member.backend == ("onnx-int8" if record["usable"] else "onnx")


def test_measuring_the_gate_without_onnxruntime_raises_instead_of_recording(
    tiny_model, model_copy, monkeypatch
):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(onnx_runtime.OnnxNotAvailable, match="cannot measure onnx-int8"):
        measure_onnx_int8_agreement(model_copy, _texts(tiny_model))
    assert ONNX_INT8_FIELD not in json.loads((model_copy / "model.json").read_text())


def test_loading_any_backend_never_unpickles(exported_model, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used while loading a model version")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    for backend in ("torch", "onnx"):
        assert Predictor.load(exported_model, backend=backend).backend == backend


def test_backend_comes_from_the_argument_and_the_command_line_reads_the_environment(
    monkeypatch,
):
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    assert resolve_backend(None) == "torch"
    assert _build_parser().parse_args(PREDICT).backend is None
    monkeypatch.setenv(BACKEND_ENV, "onnx-int8")
    assert resolve_backend(None) == "torch"  # modeling itself reads no environment
    assert _build_parser().parse_args(PREDICT).backend == "onnx-int8"
    assert resolve_backend("onnx-int8") == "onnx-int8"
    assert resolve_backend("onnx") == "onnx"
    with pytest.raises(ValueError, match="unknown inference backend 'tensorrt'"):
        resolve_backend("tensorrt")


def test_export_onnx_command_records_the_int8_gate(model_copy, tmp_path, capsys):
    csv_path = tmp_path / "in.csv"
    csv_path.write_text(
        "Drug 1,Drug 2,Interaction Description\n"
        "Aspirin,Warfarin,Aspirin may increase the anticoagulant activities of Warfarin.\n"
        "Caffeine,Diazepam,Caffeine may decrease the sedative activities of Diazepam.\n",
        encoding="utf-8",
    )
    assert main(["export-onnx", "--model", str(model_copy), "--input", str(csv_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["int8_gate"]["n_texts"] == 2
    saved = json.loads((model_copy / "model.json").read_text())
    assert saved[ONNX_INT8_FIELD]["int8_sha256"] == saved["onnx"]["int8_sha256"]
