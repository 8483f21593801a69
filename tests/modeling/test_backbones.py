"""Backbone resolution: offline only, clear errors, deterministic tiny model."""

from __future__ import annotations

import pytest
import torch

from modeling.backbones import (
    TINY_RANDOM_BERT,
    BackboneNotAvailable,
    load_backbone,
    resolve_backbone,
)
from modeling.config import DEFAULT_BACKBONE


def test_unknown_backbone_names_what_was_tried():
    with pytest.raises(BackboneNotAvailable) as error:
        resolve_backbone("microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext")
    message = str(error.value)
    assert "BiomedNLP-BiomedBERT" in message
    assert "local folder" in message and "cache" in message


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(BackboneNotAvailable, match=r"no config\.json"):
        resolve_backbone(str(tmp_path))


def test_default_backbone_resolves_to_the_bundled_folder():
    resolved = resolve_backbone(DEFAULT_BACKBONE)
    assert (resolved.path / "model.safetensors").is_file()


def test_tiny_random_bert_is_the_same_every_time():
    _, first = load_backbone(TINY_RANDOM_BERT)
    _, second = load_backbone(TINY_RANDOM_BERT)
    for (name, a), (_, b) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert first.config.hidden_size == 32
