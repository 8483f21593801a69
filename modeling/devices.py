"""Which torch device training and inference run on: ``auto`` (CUDA when present), or a name.

The device is a property of the machine, not of the model: it is not part of TrainConfig, a
checkpoint's identity or a model version, so a run checkpointed on a GPU can resume on the CPU
and an artifact trained on either loads on both. Bit-exact resume is guaranteed on the CPU only
(checkpoints store the CPU random state; dropout on a GPU draws from the CUDA generator).
"""

from __future__ import annotations

import torch

AUTO = "auto"


class DeviceUnavailable(ValueError):
    """The requested device does not exist in this torch build or on this machine."""


def resolve_device(name: str | None = None) -> torch.device:
    """``None``/``auto`` -> ``cuda`` if available, else ``cpu``; anything else is checked.

    Raises DeviceUnavailable with what was asked and what this machine has.
    """
    name = (name or AUTO).strip().lower()
    cuda = torch.cuda.is_available()
    if name == AUTO:
        return torch.device("cuda" if cuda else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise DeviceUnavailable(
            f"unknown device {name!r} (expected auto, cpu, cuda, cuda:N or mps): {error}"
        ) from None
    if device.type == "cuda":
        if not cuda:
            raise DeviceUnavailable(
                f"device {name!r} requested, but torch {torch.__version__} sees no CUDA GPU "
                "(a CPU-only build, or no driver); use auto or cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailable(
                f"device {name!r} requested, but only {torch.cuda.device_count()} CUDA GPU(s)"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailable(f"device {name!r} requested, but MPS is not available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise DeviceUnavailable(f"unsupported device {name!r} (expected auto, cpu, cuda or mps)")
    return device


def native_bf16(device: torch.device | str) -> bool:
    """Whether `device` runs bf16 matmuls natively (CPU: oneDNN's AVX512-BF16/AMX check)."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
