"""Offline ONNX work on a saved model version: the export and the int8 agreement gate.

Run by ``python -m modeling export-onnx`` and the benchmarks, never by the serving path's
imports: this module imports the inference engine, the engine does not import it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from modeling.artifacts import read_model_version, update_model_json
from modeling.inference import Predictor
from modeling.onnx_runtime import (
    INT8_MIN_AGREEMENT,
    ONNX_INT8_FIELD,
    OnnxNotAvailable,
    export_onnx_files,
    exported_file,
    onnx_paths,
    sha256_of,
)


def export_onnx(model_dir: Path) -> dict:
    """Export the merged fp32 model of ``model_dir`` and its int8 version into ``onnx/``; for a
    committee, into each member's folder (ONNX runs per member). Returns the export record
    (a committee: ``{"members": {name: record}}``).

    Side effects and safety: modeling.onnx_runtime.export_onnx_files (safe to run twice).
    """
    model_dir = Path(model_dir)
    members = read_model_version(model_dir)[0].extra.get("committee", {}).get("members")
    if members:
        return {"members": {name: export_onnx(model_dir / name) for name in members}}
    return export_onnx_files(Predictor.load(model_dir, backend="torch").model, model_dir)


def measure_onnx_int8_agreement(
    model_dir: Path, texts: Sequence[str], *, batch_size: int = 64
) -> dict:
    """Share of texts whose top class with ONNX int8 equals torch fp32's; recorded in model.json.

    Exports first when the folder has no matching int8 file. Side effect: writes {"agreement",
    "n_texts", "n_distinct", "max_abs_prob_diff", "fp32_seconds", "int8_seconds", "usable"}
    under "onnx_int8" in model.json. Safe to run twice (the record is replaced).
    """
    if exported_file(model_dir, "int8", read_model_version(model_dir)[0].extra) is None:
        export_onnx(model_dir)
    reference_predictor = Predictor.load(model_dir, backend="torch")
    started = time.perf_counter()
    reference = reference_predictor.predict_batch(texts, batch_size=batch_size)
    fp32_seconds = time.perf_counter() - started
    del reference_predictor
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        candidate_predictor = Predictor.load(model_dir, backend="onnx-int8", check_gate=False)
    if candidate_predictor.backend != "onnx-int8":
        # A fallback to torch would measure torch against itself and pass the gate for nothing.
        reasons = "; ".join(str(w.message) for w in caught) or "unknown reason"
        raise OnnxNotAvailable(f"{model_dir}: cannot measure ONNX int8: {reasons}")
    started = time.perf_counter()
    candidate = candidate_predictor.predict_batch(texts, batch_size=batch_size)
    int8_seconds = time.perf_counter() - started
    agreement = (
        float((reference.argmax(axis=1) == candidate.argmax(axis=1)).mean()) if texts else 0.0
    )
    record = {
        "agreement": agreement,
        "n_texts": len(texts),
        "n_distinct": len(set(texts)),
        "max_abs_prob_diff": float(np.abs(reference - candidate).max()) if texts else 0.0,
        "fp32_seconds": round(fp32_seconds, 4),
        "int8_seconds": round(int8_seconds, 4),
        "usable": agreement >= INT8_MIN_AGREEMENT,
        # The gate holds for this very file: a re-export must be measured again.
        "int8_sha256": sha256_of(onnx_paths(model_dir)["int8"]),
    }
    update_model_json(model_dir, **{ONNX_INT8_FIELD: record})
    return record
