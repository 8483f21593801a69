"""The DDI-2013 recipe's model and data: its config, the encoding, the split encoder and the cache.

The encoder is cut in two (modeling.ddi2013_training's docstring says why): the frozen
``bottom`` (embeddings and lower layers) runs once per sentence, in inference mode, and its
hidden states are cached (``Cached``); LoRA adapters sit in the ``top`` layers only, which every
optimisation step runs forward and backward. The head reads the mean of the tokens together with
the hidden states at the two entity starts (``pooling="entity"``).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from transformers.masking_utils import create_bidirectional_mask

from modeling.config import reject_invalid
from modeling.ddi2013 import DdiPair, render
from modeling.devices import native_bf16


@dataclass(frozen=True)
class RecipeConfig:
    """Every knob of one DDI-2013 run (saved in the bench JSON)."""

    backbone: str = "all-minilm-l6-v2"
    style: str = "blind-markers"  # modeling.ddi2013.STYLES
    pooling: str = "entity"  # "entity" (mean + both entity starts) or "mean"
    train_layers: int = 3  # LoRA in the top N layers; the layers below are frozen and cached
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("query", "key", "value", "dense")
    learning_rate: float = 1e-3
    head_learning_rate: float = 3e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    epochs: int = 4  # dev micro-F1 still rose at epoch 3 of 3 (0.667 / 0.735 / 0.758)
    batch_size: int = 16
    max_length: int = 128
    class_weighting: str = "sqrt"  # "none", "sqrt" (sqrt of inverse frequency) or "inverse"
    bf16: bool = True  # requested; resolve_precision drops it where the hardware lacks bf16
    threads: int = 1
    seed: int = 13
    log_every: int = 50

    def __post_init__(self) -> None:
        checks = {
            "pooling": self.pooling in ("entity", "mean"),
            "train_layers": self.train_layers >= 1,
            "class_weighting": self.class_weighting in ("none", "sqrt", "inverse"),
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "max_length": self.max_length >= 16,
            "threads": self.threads >= 1,
        }
        reject_invalid(self, checks)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        return data


def resolve_precision(config: RecipeConfig, device: torch.device | str) -> RecipeConfig:
    """`config` with bf16 off where `device` would only emulate it (see the module docstring)."""
    if config.bf16 and not native_bf16(device):
        return replace(config, bf16=False)
    return config


# -- encoding -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    """Token ids (special tokens included, cropped to max_length) and the two entity positions."""

    ids: list[int]
    e1: int
    e2: int


def _token_at(offsets: Sequence[tuple[int, int]], char: int) -> int:
    """Index of the first token starting at or after `char` (offsets without special tokens)."""
    for index, (start, end) in enumerate(offsets):
        if start >= char or start <= char < end:
            return index
    return max(len(offsets) - 1, 0)


def crop_window(length: int, keep_lo: int, keep_hi: int, width: int) -> int:
    """Start of a `width`-token window over `length` tokens that covers [keep_lo, keep_hi]."""
    if length <= width:
        return 0
    middle = (keep_lo + keep_hi) // 2
    start = min(max(middle - width // 2, 0), length - width)
    if keep_hi - keep_lo < width:  # both fit: make sure they are both inside
        start = min(max(start, keep_hi - width + 1), keep_lo)
    return max(start, 0)


def encode_pairs(tokenizer, pairs: Sequence[DdiPair], style: str, max_length: int) -> list[Encoded]:
    """The rendered pairs as token ids, cropped around the two entities when too long."""
    rendered = [render(pair, style) for pair in pairs]
    batch = tokenizer(
        [r.text for r in rendered], add_special_tokens=False, return_offsets_mapping=True
    )
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    width = max_length - 2
    out = []
    for r, ids, offsets in zip(rendered, batch["input_ids"], batch["offset_mapping"], strict=True):
        p1, p2 = _token_at(offsets, r.e1_char), _token_at(offsets, r.e2_char)
        lo, hi = min(p1, p2), max(p1, p2) + 6  # the second entity's marker, type and name
        start = crop_window(len(ids), lo, min(hi, len(ids) - 1), width)
        body = ids[start : start + width]
        last = len(body) - 1
        e1, e2 = (min(max(p - start, 0), last) + 1 for p in (p1, p2))  # +1: [CLS]
        out.append(Encoded([cls_id, *body, sep_id], e1, e2))
    return out


# -- the model ------------------------------------------------------------------------------------


class SplitEncoder(nn.Module):
    """A BERT encoder cut in two: frozen ``bottom`` (embeddings + lower layers) and LoRA ``top``."""

    def __init__(self, bert: nn.Module, train_layers: int, config: RecipeConfig):
        super().__init__()
        layers = len(bert.encoder.layer)
        if train_layers > layers:
            raise ValueError(f"train_layers={train_layers} but the backbone has {layers} layers")
        self.cut = layers - train_layers
        for parameter in bert.parameters():
            parameter.requires_grad_(False)
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.target_modules),
            layers_to_transform=list(range(self.cut, layers)),
            bias="none",
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
            self.peft = get_peft_model(bert, lora)
        self.bert = self.peft.base_model.model
        self.hidden_size = self.bert.config.hidden_size

    def _mask(self, hidden: torch.Tensor, attention_mask: torch.Tensor):
        return create_bidirectional_mask(
            config=self.bert.config, inputs_embeds=hidden, attention_mask=attention_mask
        )

    @torch.inference_mode()
    def bottom(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hidden states entering layer ``cut`` (no autograd; dropout off)."""
        was_training = self.bert.training
        self.bert.eval()
        hidden = self.bert.embeddings(input_ids=input_ids)
        mask = self._mask(hidden, attention_mask)
        for layer in self.bert.encoder.layer[: self.cut]:
            hidden = layer(hidden, mask)
        self.bert.train(was_training)
        return hidden

    def top(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The LoRA layers over cached hidden states: last hidden states (batch, tokens, H)."""
        mask = self._mask(hidden, attention_mask)
        for layer in self.bert.encoder.layer[self.cut :]:
            hidden = layer(hidden, mask)
        return hidden


class PairClassifier(nn.Module):
    """SplitEncoder -> pooling (mean, or mean + both entity starts) -> dropout -> linear."""

    def __init__(self, encoder: SplitEncoder, num_classes: int, pooling: str, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        width = encoder.hidden_size * (3 if pooling == "entity" else 1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(self, hidden, attention_mask, e1, e2) -> torch.Tensor:
        out = self.encoder.top(hidden, attention_mask)
        mask = attention_mask.unsqueeze(-1).to(out.dtype)
        pooled = (out * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        if self.pooling == "entity":
            rows = torch.arange(out.shape[0], device=out.device)
            pooled = torch.cat([pooled, out[rows, e1], out[rows, e2]], dim=-1)
        return self.head(self.dropout(pooled))


# -- data on the device ---------------------------------------------------------------------------


@dataclass
class Cached:
    """Per example: the hidden states entering the LoRA layers (unpadded) and entity positions."""

    hidden: list[torch.Tensor]
    e1: torch.Tensor
    e2: torch.Tensor

    @property
    def lengths(self) -> list[int]:
        return [h.shape[0] for h in self.hidden]


def cache_bottom(
    model: PairClassifier, encoded: Sequence[Encoded], pad_id: int, bf16: bool, batch: int = 64
) -> Cached:
    """Run the frozen bottom once over every example, in length-sorted batches."""
    device = model.head.weight.device
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))
    hidden: list[torch.Tensor | None] = [None] * len(encoded)
    dtype = torch.bfloat16 if bf16 else torch.float32
    for start in range(0, len(order), batch):
        chunk = order[start : start + batch]
        ids = pad_sequence(
            [torch.as_tensor(encoded[i].ids) for i in chunk], batch_first=True, padding_value=pad_id
        )
        lengths = [len(encoded[i].ids) for i in chunk]
        mask = _mask_of(lengths, ids.shape[1], torch.device("cpu"))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model.encoder.bottom(ids.to(device), mask.to(device))
        for row, i in enumerate(chunk):
            hidden[i] = out[row, : lengths[row]].to(dtype).clone()
    return Cached(
        hidden=hidden,  # type: ignore[arg-type]
        e1=torch.as_tensor([e.e1 for e in encoded], device=device),
        e2=torch.as_tensor([e.e2 for e in encoded], device=device),
    )


def _mask_of(lengths: Sequence[int], width: int, device: torch.device) -> torch.Tensor:
    """Attention mask (batch, width): 1 over each row's first `length` tokens."""
    lengths_t = torch.as_tensor(lengths, device=device)
    return (torch.arange(width, device=device)[None, :] < lengths_t[:, None]).long()


def bucketed_batches(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Batches of similar length (sorted within shuffled runs of 50 batches), shuffled; seeded."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    run = batch_size * 50
    batches = []
    for start in range(0, len(order), run):
        chunk = sorted(order[start : start + run], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(cached: Cached, batch: Sequence[int]):
    hidden = pad_sequence([cached.hidden[i] for i in batch], batch_first=True)
    mask = _mask_of([cached.hidden[i].shape[0] for i in batch], hidden.shape[1], hidden.device)
    return hidden, mask, cached.e1[batch], cached.e2[batch]


def predict(
    model: PairClassifier, cached: Cached, bf16: bool, batch_size: int = 64, logits: bool = False
) -> np.ndarray:
    """Class probabilities (n, C), or the raw logits with `logits`; batched by length; restores
    train mode."""
    model.eval()
    lengths = cached.lengths
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    probs = np.zeros((len(lengths), model.head.out_features), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            with torch.autocast(cached.e1.device.type, dtype=torch.bfloat16, enabled=bf16):
                scores = model(*collate(cached, chunk)).float()
            probs[chunk] = (scores if logits else torch.softmax(scores, dim=-1)).cpu().numpy()
    model.train()
    return probs
