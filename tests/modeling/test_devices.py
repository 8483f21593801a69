"""Device selection: auto picks CUDA only where it exists; a device that is not there fails fast."""

from __future__ import annotations

import pytest
import torch

from modeling.cli import main
from modeling.devices import DeviceUnavailable, resolve_device
from modeling.inference import Predictor

CUDA = torch.cuda.is_available()


@pytest.mark.parametrize("name", [None, "auto", " AUTO "])
def test_auto_is_cuda_where_present_else_cpu(name):
    assert resolve_device(name).type == ("cuda" if CUDA else "cpu")


def test_cpu_is_always_available():
    assert resolve_device("cpu") == torch.device("cpu")


def test_cuda_is_refused_with_a_reason_where_there_is_none():
    if CUDA:
        assert resolve_device("cuda").type == "cuda"
        with pytest.raises(DeviceUnavailable, match="only"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(DeviceUnavailable, match="sees no CUDA GPU"):
            resolve_device("cuda")


@pytest.mark.parametrize(
    ("name", "message"), [("banana", "unknown device"), ("meta", "unsupported device")]
)
def test_unknown_devices_are_named_in_the_error(name, message):
    with pytest.raises(DeviceUnavailable, match=message):
        resolve_device(name)


def test_training_records_its_device_and_the_predictor_loads_on_the_one_asked_for(tiny_model):
    result, examples = tiny_model
    assert result.metrics["device"] == ("cuda" if CUDA else "cpu")
    predictor = Predictor.load(result.artifact_dir, device="cpu")
    assert predictor.device == torch.device("cpu")
    assert next(predictor.model.parameters()).device == torch.device("cpu")
    probs = predictor.predict_batch([e.text for e in examples[:3]])
    assert probs.shape == (3, 2)


def test_the_cli_reports_an_unavailable_device_as_a_usage_error(tiny_model, tmp_path, capsys):
    # The failing case needs a device this machine lacks.
    device = f"cuda:{torch.cuda.device_count()}" if CUDA else "cuda"
    result, _ = tiny_model
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "Drug 1,Drug 2,Interaction Description,label\n"
        "Aspirin,Warfarin,Aspirin may increase the anticoagulant activities of Warfarin.,"
        "Synergistic\n"
    )
    code = main(
        [
            "evaluate",
            "--model",
            str(result.artifact_dir),
            "--labels",
            str(labels),
            "--device",
            device,
        ]
    )
    assert code == 2
    assert f"device {device!r} requested" in capsys.readouterr().err
