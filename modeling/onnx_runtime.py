"""Optional ONNX Runtime inference: the merged model exported once per model version, fp32 or int8.

The merged classifier (LoRA folded into the backbone, mean pooling, linear head; logits out) is
exported with the TorchScript-based ``torch.onnx.export(..., dynamo=False)`` (works offline, no
onnxscript needed) and cached inside the model version folder::

    onnx/model.onnx        fp32, same probabilities as torch fp32 (within 1e-4)
    onnx/model.int8.onnx   onnxruntime dynamic int8 (per-channel QInt8 weights of every MatMul)

model.json records what was exported under ``"onnx"`` (file sha256s, versions), checked on load
so that a stale or foreign file is re-exported rather than used. The int8 engine runs as a
cascade: int8 scores every text, and the texts whose top-two probability margin is below the
recorded ``recheck_margin`` are scored again by the fp32 file (int8 flips a top class only where
the margin is small). The margin and the cascade's agreement with torch fp32 on texts the margin
was not chosen on go under ``"onnx_int8"`` (modeling.export measures them), and the int8 engine
is used only where that agreement is >= 99.5%.
ONNX files are protobuf, never pickle. This module knows ONNX only; building the torch model
to export and measuring the gate against torch are modeling.export's (offline) job.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from modeling.artifacts import MODEL_JSON, ArtifactError, update_model_json

# An int8 engine is served only where its measured top-class agreement with fp32 reaches this,
# on at least this many distinct texts the recheck margin was not chosen on: at 99.5% one flip
# in 200 texts already fails, so fewer texts cannot tell 99.5% from 98%.
INT8_MIN_AGREEMENT = 0.995
INT8_MIN_HELD_OUT_TEXTS = 200
# The recheck margins the gate measurement tries, smallest first (0: int8 alone). It stops at 0.5
# so that the cascade stays an int8 engine: past it fp32 would score most texts again.
RECHECK_MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)

ONNX_DIR = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
ONNX_FIELD = "onnx"
ONNX_INT8_FIELD = "onnx_int8"
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask")


class OnnxNotAvailable(RuntimeError):
    """onnxruntime (or onnx for exporting) is not installed, or the export failed."""


def require_onnxruntime():
    """The onnxruntime module; OnnxNotAvailable with the install hint when it is missing."""
    try:
        import onnxruntime
    except ImportError as error:
        raise OnnxNotAvailable(
            "onnxruntime is not installed (pip install onnxruntime onnx)"
        ) from error
    return onnxruntime


def onnx_paths(model_dir: Path) -> dict[str, Path]:
    """Where the fp32 and int8 ONNX files of a model version live."""
    folder = Path(model_dir) / ONNX_DIR
    return {"fp32": folder / FP32_FILE, "int8": folder / INT8_FILE}


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _tmp_path(path: Path) -> Path:
    """A temporary name beside ``path``, unique per process so concurrent exporters never clash."""
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


def export_onnx_files(model, model_dir: Path) -> dict:
    """Export ``model`` (the merged fp32 torch classifier of ``model_dir``) and its dynamic int8
    version into ``model_dir/onnx/``.

    Side effects: writes onnx/model.onnx, onnx/model.int8.onnx (each through a temporary file and
    os.replace) and the ``"onnx"`` record of model.json. Safe to run twice: it rewrites the same
    files; two processes exporting at once each replace the files atomically.
    """
    import torch

    require_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model_dir = Path(model_dir)
    paths = onnx_paths(model_dir)
    paths["fp32"].parent.mkdir(exist_ok=True)
    # Two rows of different lengths so the traced graph keeps the padding mask path.
    input_ids = torch.full((2, 8), 1000, dtype=torch.long)
    attention_mask = torch.ones((2, 8), dtype=torch.long)
    attention_mask[1, 5:] = 0
    dynamic = {0: "batch", 1: "sequence"}
    started = time.perf_counter()
    fp32_tmp = _tmp_path(paths["fp32"])
    int8_tmp = _tmp_path(paths["int8"])
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            # Tracer warnings about Python-level shape checks in transformers' mask code: the
            # round-trip test checks other batch sizes and lengths give the same numbers.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (input_ids, attention_mask),
                str(fp32_tmp),
                input_names=list(INPUT_NAMES),
                output_names=["logits"],
                dynamic_axes={
                    "input_ids": dynamic,
                    "attention_mask": dynamic,
                    "logits": {0: "batch"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
        with _quiet_root_logger():
            quantize_dynamic(
                str(fp32_tmp),
                str(int8_tmp),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
            )
    except Exception as error:  # the exporter raises many unrelated types; all mean "no ONNX"
        for tmp in (fp32_tmp, int8_tmp):
            tmp.unlink(missing_ok=True)
        raise OnnxNotAvailable(f"{model_dir}: ONNX export failed: {error}") from error
    os.replace(fp32_tmp, paths["fp32"])
    os.replace(int8_tmp, paths["int8"])
    record = {
        "opset": OPSET,
        "fp32_sha256": sha256_of(paths["fp32"]),
        "int8_sha256": sha256_of(paths["int8"]),
        "export_seconds": round(time.perf_counter() - started, 2),
        "versions": _onnx_versions(),
    }
    update_model_json(model_dir, **{ONNX_FIELD: record})
    return record


@contextmanager
def _quiet_root_logger():
    """Hide the quantizer's root-logger advice ("consider pre-processing") printed on every call."""
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(previous)


def _onnx_versions() -> dict[str, str]:
    """Library versions that shape the exported graph, for the record."""
    import onnx
    import onnxruntime
    import torch

    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def exported_file(model_dir: Path, which: str, model_json_extra: dict) -> Path | None:
    """The ONNX file ``which`` ("fp32"|"int8") when it exists and matches the recorded sha256."""
    path = onnx_paths(model_dir)[which]
    record = model_json_extra.get(ONNX_FIELD)
    if not path.is_file() or not isinstance(record, dict):
        return None
    if record.get(f"{which}_sha256") != sha256_of(path):
        warnings.warn(
            f"{path}: does not match the sha256 recorded in {MODEL_JSON}; not used",
            stacklevel=3,
        )
        return None
    return path


def onnx_int8_agreement_of(model_json_extra: dict) -> float | None:
    """The ONNX int8 agreement recorded in model.json for the current int8 file, else None.

    None when it was never measured, or was measured on another int8 file than the one the
    ``"onnx"`` record names (a re-export must be measured again).
    """
    record = _int8_record(model_json_extra)
    return None if record is None else float(record["agreement"])


def int8_gate_passes(agreement: float, n_held_out: int) -> bool:
    """The int8 gate: agreement >= 99.5% on >= 200 distinct texts the margin was not chosen on."""
    return agreement >= INT8_MIN_AGREEMENT and n_held_out >= INT8_MIN_HELD_OUT_TEXTS


def int8_gate_refusal(model_json_extra: dict) -> str | None:
    """Why the int8 engine must not serve (its recorded gate, int8_gate_passes), or None where
    the gate passed for the current int8 file."""
    record = _int8_record(model_json_extra)
    agreement = None if record is None else float(record["agreement"])
    texts = 0 if record is None else int(record.get("n_held_out", 0))
    if agreement is not None and int8_gate_passes(agreement, texts):
        return None
    return (
        f"ONNX int8 agreement with fp32 is {agreement!r} on {texts} held-out texts (needs >= "
        f"{INT8_MIN_AGREEMENT:.1%} on >= {INT8_MIN_HELD_OUT_TEXTS} distinct texts, measured on "
        "the current int8 file; run `python -m modeling export-onnx --model DIR --input CSV`)"
    )


def recheck_margin_of(model_json_extra: dict) -> float:
    """The recorded recheck margin of the int8 cascade (0.0, int8 alone, for a record without
    one: it was measured as int8 alone)."""
    record = _int8_record(model_json_extra)
    return 0.0 if record is None else float(record.get("recheck_margin", 0.0))


def _int8_record(model_json_extra: dict) -> dict | None:
    record = model_json_extra.get(ONNX_INT8_FIELD)
    exported = model_json_extra.get(ONNX_FIELD)
    if not isinstance(record, dict) or "agreement" not in record or not isinstance(exported, dict):
        return None
    if record.get("int8_sha256") != exported.get("int8_sha256"):
        return None
    return record


def load_tokenizer(backbone: str):
    """Only the tokenizer of a backbone (no encoder weights): the ONNX path needs no torch model."""
    from transformers import AutoTokenizer

    from modeling.backbones import bundled_minilm_path, resolve_backbone

    resolved = resolve_backbone(backbone)
    # The in-code tiny BERT reuses the bundled MiniLM vocabulary (see modeling.backbones).
    path = resolved.path if resolved.path is not None else bundled_minilm_path()
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


class OnnxScorer:
    """An ONNX Runtime session over one exported file: int64 numpy arrays in, logits out."""

    def __init__(self, path: Path, *, threads: int | None = None):
        ort = require_onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or _default_threads()
        options.inter_op_num_threads = 1
        # Idle worker threads spin by default; on a shared CPU that burns cycles others need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        if not self.path.is_file():
            raise ArtifactError(f"{self.path}: ONNX file is missing")
        self.session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Logits of shape (batch, classes) as float32."""
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        return self.session.run(None, feed)[0].astype(np.float32, copy=False)


def _default_threads() -> int:
    """Same thread count as torch (which honours OMP_NUM_THREADS and the worker's setting)."""
    import torch

    return max(1, torch.get_num_threads())
