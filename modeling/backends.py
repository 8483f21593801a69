"""The inference engines by name (pure Python: the CLI builds its choices from them without
importing torch). modeling.inference serves them; README "Inference" measures them."""

from __future__ import annotations

BACKENDS = ("torch", "torch-bf16", "onnx", "onnx-int8")
# Measured worse and removed (README "Inference": torch dynamic int8 was slower than torch fp32
# on distinct texts, 1.8x vs 2.4x the pipeline, and agreed with fp32 on only 96.9 % of them).
REMOVED_BACKENDS = {
    "torch-int8": "the torch-int8 backend was removed (measured slower than torch fp32 and "
    "less accurate, README 'Inference'); use 'onnx', or 'onnx-int8' where its gate passed",
}


def resolve_backend(backend: str | None) -> str:
    """The backend to use: the argument, else torch (callers pass their setting)."""
    if backend is None:
        backend = "torch"
    if backend in REMOVED_BACKENDS:
        raise ValueError(REMOVED_BACKENDS[backend])
    if backend not in BACKENDS:
        raise ValueError(f"unknown inference backend {backend!r}; choose one of {BACKENDS}")
    return backend
