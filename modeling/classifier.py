"""The classifier: a backbone encoder with LoRA adapters, mean pooling and a linear head."""

from __future__ import annotations

import warnings

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from torch import nn
from transformers import PreTrainedTokenizerBase

from modeling.backbones import load_backbone
from modeling.config import TrainConfig

HEAD_PREFIX = "head."


class MeanPoolClassifier(nn.Module):
    """Encoder -> masked mean over tokens -> dropout -> linear layer giving one logit per class.

    Mean pooling rather than [CLS]: sentence-transformers backbones such as all-MiniLM-L6-v2 were
    trained to be read that way.
    """

    def __init__(self, encoder: nn.Module, hidden_size: int, num_classes: int, dropout: float):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, num_classes)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.head(self.dropout(pooled))


def lora_config(config: TrainConfig) -> LoraConfig:
    """The peft LoRA settings of a TrainConfig."""
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        bias="none",
    )


def build_classifier(
    config: TrainConfig, num_classes: int
) -> tuple[PreTrainedTokenizerBase, MeanPoolClassifier]:
    """Backbone with fresh LoRA adapters and head; initialisation follows the global torch seed."""
    tokenizer, encoder = load_backbone(config.backbone)
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
    with warnings.catch_warnings():
        # peft calls a transformers method deprecated in v5; harmless, and noisy in every run.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        peft_encoder = get_peft_model(encoder, lora_config(config))
    hidden_size = encoder.config.hidden_size
    model = MeanPoolClassifier(peft_encoder, hidden_size, num_classes, config.head_dropout)
    return tokenizer, model


def trainable_state(model: MeanPoolClassifier) -> dict[str, torch.Tensor]:
    """CPU copies of the LoRA and head weights: everything a model version adds to a backbone."""
    state = {
        key: value.detach().to("cpu", copy=True).contiguous()
        for key, value in get_peft_model_state_dict(model.encoder).items()
    }
    for key, value in model.head.state_dict().items():
        state[HEAD_PREFIX + key] = value.detach().to("cpu", copy=True).contiguous()
    return state


def load_trainable_state(model: MeanPoolClassifier, state: dict[str, torch.Tensor]) -> None:
    """Put LoRA and head weights back into the model (side effect: mutates the model in place)."""
    adapter = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}
    head = {k[len(HEAD_PREFIX) :]: v for k, v in state.items() if k.startswith(HEAD_PREFIX)}
    result = set_peft_model_state_dict(model.encoder, adapter)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"adapter weights do not fit the backbone: {unexpected[:3]}")
    model.head.load_state_dict(head)


def merge_adapters(model: MeanPoolClassifier) -> MeanPoolClassifier:
    """Fold LoRA into the backbone weights for fast inference (side effect: swaps the encoder)."""
    if isinstance(model.encoder, PeftModel):
        model.encoder = model.encoder.merge_and_unload()
    return model
