"""Optional int8 inference: dynamic quantization of Linear layers, gated by measured agreement."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import nn

from modeling.artifacts import update_model_json

INT8_MIN_AGREEMENT = 0.995
INT8_FIELD = "int8"


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """Encoder Linear layers to dynamic int8 (weights int8, activations quantized on the fly).

    The classification head stays fp32: it is tiny and sits right before the probabilities.
    """
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch marks torch.ao.quantization deprecated in favour of torchao; it still works and
        # avoids an extra dependency.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        model.encoder = quantize_dynamic(model.encoder, {nn.Linear}, dtype=_qint8())
    return model


def _qint8():
    """torch.qint8, imported late so importing this module stays cheap."""
    import torch

    return torch.qint8


def int8_agreement_of(model_json_extra: dict) -> float | None:
    """The int8 agreement recorded in model.json, or None when it was never measured."""
    record = model_json_extra.get(INT8_FIELD)
    if not isinstance(record, dict) or "agreement" not in record:
        return None
    return float(record["agreement"])


def measure_int8_agreement(model_dir: Path, texts: Sequence[str], *, batch_size: int = 64) -> dict:
    """Share of texts whose top class is the same with int8 as with fp32; recorded in model.json.

    Side effect: writes {"agreement", "n_texts", "max_abs_prob_diff", "fp32_seconds",
    "int8_seconds"} under "int8" in model.json. Safe to run twice (the record is replaced).
    """
    from modeling.inference import Predictor

    fp32 = Predictor.load(model_dir)
    started = time.perf_counter()
    reference = fp32.predict_batch(texts)
    fp32_seconds = time.perf_counter() - started
    # The gate is what is being measured, so it is not checked (a committee quantizes every member).
    int8 = Predictor.load(model_dir, backend="torch-int8", check_gate=False, device="cpu")
    started = time.perf_counter()
    candidate = int8.predict_batch(texts)
    int8_seconds = time.perf_counter() - started
    same_top = reference.argmax(axis=1) == candidate.argmax(axis=1)
    agreement = float(same_top.mean()) if len(texts) else 0.0
    record = {
        "agreement": agreement,
        "n_texts": len(texts),
        "max_abs_prob_diff": float(np.abs(reference - candidate).max()) if len(texts) else 0.0,
        "fp32_seconds": round(fp32_seconds, 4),
        "int8_seconds": round(int8_seconds, 4),
        "usable": agreement >= INT8_MIN_AGREEMENT,
    }
    update_model_json(model_dir, **{INT8_FIELD: record})
    return record
