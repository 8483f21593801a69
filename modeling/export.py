"""Offline ONNX work on a saved model version: the export and the int8 agreement gate.

Run by ``python -m modeling export-onnx`` and the benchmarks, never by the serving path's
imports: this module imports the inference engine, the engine does not import it.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from modeling.artifacts import read_model_version, update_model_json
from modeling.inference import Predictor, top_two_margin
from modeling.onnx_runtime import (
    INT8_MIN_AGREEMENT,
    ONNX_INT8_FIELD,
    RECHECK_MARGINS,
    OnnxNotAvailable,
    export_onnx_files,
    exported_file,
    int8_gate_passes,
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
    extra = read_model_version(model_dir)[0].extra
    members = extra.get("committee", {}).get("members")
    if members:
        return {"members": {name: export_onnx(model_dir / name) for name in members}}
    return export_onnx_files(Predictor.load(model_dir, backend="torch").model, model_dir)


def measure_onnx_int8_agreement(
    model_dir: Path, texts: Sequence[str], *, batch_size: int = 64
) -> dict:
    """Measure the int8 cascade against torch fp32 on ``texts`` and record the gate in model.json;
    for a committee, member by member (each member's engine is gated on its own numbers).

    The texts are split in two halves by a hash of the text (a text never sits in both): on the
    first the smallest recheck margin (modeling.onnx_runtime.RECHECK_MARGINS) is chosen at which
    the cascade's top class equals torch fp32's on >= 99.75% of the rows (half the disagreement
    the gate allows, room for the sampling noise of the choice); the gate's
    ``"agreement"`` is the cascade's at that margin on the other half, which did not choose it.
    It is usable where that agreement is >= 99.5% on >= 200 distinct held-out texts.
    Exports first when the folder has no matching int8 file. Side effect: writes {"agreement",
    "recheck_margin", "choose_agreement", "plain_agreement", "rechecked_share", "held_out",
    "n_held_out", "n_texts", "n_distinct", "max_abs_prob_diff", "fp32_seconds", "int8_seconds",
    "usable", "int8_sha256"} under "onnx_int8" in model.json. Safe to run twice (the record is
    replaced).
    """
    model_dir = Path(model_dir)
    extra = read_model_version(model_dir)[0].extra
    members = extra.get("committee", {}).get("members")
    if members:
        return {
            "members": {
                name: measure_onnx_int8_agreement(model_dir / name, texts, batch_size=batch_size)
                for name in members
            }
        }
    if exported_file(model_dir, "int8", extra) is None:
        export_onnx(model_dir)
    texts = list(texts)
    reference, fp32_seconds = _timed_probs(model_dir, "torch", texts, batch_size)
    candidate, int8_seconds = _timed_probs(model_dir, "onnx-int8", texts, batch_size)
    onnx_fp32, _ = _timed_probs(model_dir, "onnx", texts, batch_size)
    gate = choose_recheck_margin(
        texts,
        reference.argmax(axis=1),
        candidate,
        onnx_fp32.argmax(axis=1),
    )
    record = {
        **gate,
        "n_texts": len(texts),
        "n_distinct": len(set(texts)),
        "max_abs_prob_diff": float(np.abs(reference - candidate).max()) if texts else 0.0,
        "fp32_seconds": round(fp32_seconds, 4),
        "int8_seconds": round(int8_seconds, 4),
        "usable": int8_gate_passes(gate["agreement"], gate["n_held_out"]),
        # The gate holds for this very file: a re-export must be measured again.
        "int8_sha256": sha256_of(onnx_paths(model_dir)["int8"]),
    }
    update_model_json(model_dir, **{ONNX_INT8_FIELD: record})
    return record


def _timed_probs(
    model_dir: Path, backend: str, texts: list[str], batch_size: int
) -> tuple[np.ndarray, float]:
    """Probabilities of ``texts`` by one engine of ``model_dir`` (int8 alone, no cascade), and
    the seconds it took; OnnxNotAvailable when an ONNX engine would fall back to another."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictor = Predictor.load(model_dir, backend=backend, check_gate=False)
    if predictor.backend != backend:
        # A fallback to torch would measure torch against itself and pass the gate for nothing.
        reasons = "; ".join(str(w.message) for w in caught) or "unknown reason"
        raise OnnxNotAvailable(f"{model_dir}: cannot measure {backend}: {reasons}")
    started = time.perf_counter()
    probs = predictor.predict_batch(texts, batch_size=batch_size)
    return probs, time.perf_counter() - started


def choose_recheck_margin(
    texts: Sequence[str],
    reference_top: np.ndarray,
    int8_probs: np.ndarray,
    fp32_top: np.ndarray,
) -> dict:
    """The int8 cascade's recheck margin, chosen on one half of the texts and scored on the other.

    ``reference_top``: torch fp32's top class per row; ``int8_probs``: int8 alone; ``fp32_top``:
    the ONNX fp32 file's top class (what a recheck serves). The halves split by a sha256 of the
    text; when a half would be empty (one distinct text), both are all rows and ``held_out`` is
    False and ``n_held_out`` 0 (never usable). No text gives agreement 0.0.
    """
    if not len(texts):
        return {
            "agreement": 0.0,
            "recheck_margin": 0.0,
            "choose_agreement": 0.0,
            "plain_agreement": 0.0,
            "rechecked_share": 0.0,
            "held_out": False,
            "n_held_out": 0,
        }
    check = np.array([hashlib.sha256(t.encode("utf-8")).digest()[0] % 2 == 1 for t in texts])
    held_out = bool(check.any() and (~check).any())
    choose = ~check if held_out else np.ones(len(texts), dtype=bool)
    check = check if held_out else choose
    margin = top_two_margin(int8_probs)
    int8_top = int8_probs.argmax(axis=1)

    def cascade(threshold: float) -> np.ndarray:
        return np.where(margin < threshold, fp32_top, int8_top) == reference_top

    # Aim at half the disagreement the gate allows: a margin that only just passes on one half
    # fails on the other about as often as not (measured: 99.69% on the half that chose 0.2,
    # 99.42% on the other, 1,000 DDI-2013 texts each).
    aim = 1.0 - (1.0 - INT8_MIN_AGREEMENT) / 2
    chosen = next(
        (t for t in RECHECK_MARGINS if cascade(t)[choose].mean() >= aim), RECHECK_MARGINS[-1]
    )
    agrees = cascade(chosen)
    return {
        "agreement": float(agrees[check].mean()),
        "recheck_margin": chosen,
        "choose_agreement": float(agrees[choose].mean()),
        "plain_agreement": float((int8_top == reference_top).mean()),
        "rechecked_share": float((margin < chosen).mean()),
        "held_out": held_out,
        # Distinct texts the agreement was scored on, none of which chose the margin.
        "n_held_out": len({t for t, c in zip(texts, check, strict=True) if c}) if held_out else 0,
    }
