"""Model version folders: LoRA adapter + head weights (safetensors) and model.json.

Never a copy of the backbone: model.json names it and loading resolves it offline.

Layout of a model version folder::

    adapter.safetensors   LoRA weights (peft state-dict keys)
    head.safetensors      classification head weights
    model.json            backbone reference, classes, placeholders, temperature, metrics,
                          TrainConfig, data fingerprint, library versions, the committee
                          (member folders, confidence model) (written last)
    vocabulary.json       keys and n-grams of the labelled texts (novelty signal)
    out_of_fold.json      out-of-fold class per labelled text key, confidence-model fit rows
    members/<k>/          member k of the cross-fitted committee, itself a model version folder
                          (the top-level adapter and head are member 0's, so single-model tools
                          such as the ONNX export still read the folder)
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from modeling.blinding import PLACEHOLDER_A, PLACEHOLDER_B, PLACEHOLDER_OTHER
from modeling.classifier import HEAD_PREFIX
from modeling.config import TrainConfig

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
ADAPTER_FILE = "adapter.safetensors"
HEAD_FILE = "head.safetensors"
VOCABULARY_FILE = "vocabulary.json"
# Out-of-fold class per labelled text key (the promotion gate) and the rows the confidence model
# was fitted on (ablations).
OOF_FILE = "out_of_fold.json"
# Pickle-based formats can run arbitrary code when loaded: never read, refuse to load beside them.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class ArtifactError(ValueError):
    """A model version folder is missing, incomplete or unsafe; the message names the file."""


@dataclass(frozen=True)
class ModelVersionInfo:
    """What model.json says about a model version."""

    classes: list[str]
    temperature: float
    config: TrainConfig
    metrics: dict
    data_fingerprint: str
    extra: dict


def data_fingerprint(pairs: Iterable[tuple[str, str]]) -> str:
    """sha256 over the sorted (text, label) pairs: the same training data gives the same value."""
    digest = hashlib.sha256()
    for text, label in sorted(pairs):
        digest.update(json.dumps([text, label], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the numbers, for the record."""
    import peft
    import safetensors
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "safetensors": safetensors.__version__,
    }


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file, then rename it over ``path``: no half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def write_safetensors_atomic(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """safetensors file written through a temporary file and os.replace."""
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def save_model_version(
    out_dir: Path,
    *,
    state: dict[str, torch.Tensor],
    classes: list[str],
    temperature: float,
    config: TrainConfig,
    metrics: dict,
    fingerprint: str,
    committee: dict | None = None,
) -> Path:
    """Write a model version folder (creates it; overwrites the same files if present).

    ``committee``: ``members`` (trainable states), ``confidence_model``, ``direction_probe`` and
    ``labelled`` (LabelledSet.to_dict()); each member is written as its own folder under
    ``members/``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {}
    if committee is not None:
        names = []
        for k, member in enumerate(committee["members"]):
            name = f"members/{k}"
            save_model_version(
                out_dir / name,
                state=member,
                classes=classes,
                temperature=1.0,
                config=config,
                metrics={},
                fingerprint=fingerprint,
            )
            names.append(name)
        write_json_atomic(out_dir / VOCABULARY_FILE, committee["labelled"])
        extra["committee"] = {
            "members": names,
            "confidence_model": committee["confidence_model"],
            "direction_probe": committee["direction_probe"],
        }
    adapter = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}
    head = {k[len(HEAD_PREFIX) :]: v for k, v in state.items() if k.startswith(HEAD_PREFIX)}
    write_safetensors_atomic(out_dir / ADAPTER_FILE, adapter)
    write_safetensors_atomic(out_dir / HEAD_FILE, head)
    document = {
        "format_version": FORMAT_VERSION,
        "backbone": config.backbone,
        "classes": list(classes),
        "placeholders": {"a": PLACEHOLDER_A, "b": PLACEHOLDER_B, "other": PLACEHOLDER_OTHER},
        "temperature": temperature,
        "metrics": metrics,
        "train_config": config.to_dict(),
        "data_fingerprint": fingerprint,
        "library_versions": library_versions(),
        **extra,
    }
    # model.json last: its presence marks a complete folder.
    write_json_atomic(out_dir / MODEL_JSON, document)
    return out_dir


def refuse_pickle_files(model_dir: Path) -> None:
    """Raise ArtifactError when the folder holds pickle-format weights (.bin, .pt, ...)."""
    unsafe = sorted(p.name for p in Path(model_dir).iterdir() if p.suffix in PICKLE_SUFFIXES)
    if unsafe:
        raise ArtifactError(
            f"{model_dir}: refusing to load pickle-format files {unsafe}; "
            "model versions hold safetensors weights only"
        )


def read_model_version(model_dir: Path) -> tuple[ModelVersionInfo, dict[str, torch.Tensor]]:
    """Read model.json and the adapter+head weights (head keys prefixed), after safety checks."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ArtifactError(f"{model_dir}: model version folder does not exist")
    refuse_pickle_files(model_dir)
    for name in (MODEL_JSON, ADAPTER_FILE, HEAD_FILE):
        if not (model_dir / name).is_file():
            raise ArtifactError(f"{model_dir}: missing {name}; not a complete model version")
    document = json.loads((model_dir / MODEL_JSON).read_text(encoding="utf-8"))
    if document.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{model_dir / MODEL_JSON}: format_version {document.get('format_version')!r}, "
            f"expected {FORMAT_VERSION}"
        )
    state = dict(load_file(str(model_dir / ADAPTER_FILE)))
    for key, value in load_file(str(model_dir / HEAD_FILE)).items():
        state[HEAD_PREFIX + key] = value
    known = {"classes", "temperature", "train_config", "metrics", "data_fingerprint"}
    info = ModelVersionInfo(
        classes=list(document["classes"]),
        temperature=float(document["temperature"]),
        config=TrainConfig.from_dict(document["train_config"]),
        metrics=document.get("metrics", {}),
        data_fingerprint=document.get("data_fingerprint", ""),
        extra={k: v for k, v in document.items() if k not in known},
    )
    return info, state


def read_out_of_fold(model_dir: Path) -> dict[str, int]:
    """{text key: out-of-fold class index} of a version's labelled texts ({} when none)."""
    path = Path(model_dir) / OOF_FILE
    if not path.is_file():
        return {}
    return {
        k: int(v) for k, v in json.loads(path.read_text(encoding="utf-8"))["predictions"].items()
    }


def update_model_json(model_dir: Path, **fields: Any) -> None:
    """Add or replace top-level fields of model.json (e.g. a measured int8 agreement); atomic."""
    path = Path(model_dir) / MODEL_JSON
    document = json.loads(path.read_text(encoding="utf-8"))
    document.update(fields)
    write_json_atomic(path, document)
