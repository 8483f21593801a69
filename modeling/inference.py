"""Streaming, calibrated inference over a saved model version.

Speed comes from work not done: identical texts within a window are scored once (DrugBank
sentences repeat a few dozen patterns), unique texts are sorted by length so each batch pads only
to its own longest text, LoRA is merged into the backbone weights, and autograd is off.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from modeling.artifacts import read_model_version
from modeling.classifier import (
    MeanPoolClassifier,
    build_classifier,
    load_trainable_state,
    merge_adapters,
)
from modeling.encoding import encode, pad_batch, pad_id_of
from modeling.quantization import INT8_MIN_AGREEMENT, int8_agreement_of, quantize_dynamic_int8

WINDOW_SIZE = 4096


class Predictor:
    """A loaded model version: texts (already blinded) in, calibrated probabilities out."""

    def __init__(
        self,
        *,
        model: MeanPoolClassifier,
        tokenizer: PreTrainedTokenizerBase,
        classes: list[str],
        temperature: float,
        model_dir: Path,
        max_length: int,
        quantized: bool = False,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.classes = classes
        self.temperature = temperature
        self.model_dir = model_dir
        self.max_length = max_length
        self.quantized = quantized
        self._pad_id = pad_id_of(tokenizer)

    @classmethod
    def load(cls, model_dir: Path, *, quantize: bool = False) -> Predictor:
        """Load a model version folder (backbone resolved offline, LoRA merged, eval mode).

        With ``quantize=True`` the int8 path is used only if model.json records a measured
        agreement with fp32 of at least 99.5%; otherwise a warning is issued and fp32 is used.
        """
        model_dir = Path(model_dir)
        info, state = read_model_version(model_dir)
        # Fixed seed: building draws fresh LoRA/head weights that are overwritten right after,
        # and the caller's random stream must not move.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            tokenizer, model = build_classifier(info.config, len(info.classes))
        load_trainable_state(model, state)
        model = merge_adapters(model).eval()
        use_int8 = False
        if quantize:
            agreement = int8_agreement_of(info.extra)
            if agreement is not None and agreement >= INT8_MIN_AGREEMENT:
                model = quantize_dynamic_int8(model)
                use_int8 = True
            else:
                warnings.warn(
                    f"{model_dir}: int8 agreement with fp32 is {agreement!r} (needs a measured "
                    f">= {INT8_MIN_AGREEMENT:.1%}; run `python -m modeling verify-int8`); "
                    "using fp32",
                    stacklevel=2,
                )
        return cls(
            model=model,
            tokenizer=tokenizer,
            classes=list(info.classes),
            temperature=info.temperature,
            model_dir=model_dir,
            max_length=info.config.max_length,
            quantized=use_int8,
        )

    def predict_proba(self, texts: Iterable[str], *, batch_size: int = 64) -> Iterator[np.ndarray]:
        """One float32 probability vector per text, in input order; memory bounded by a window."""
        iterator = iter(texts)
        while window := list(islice(iterator, WINDOW_SIZE)):
            yield from self._score_window(window, batch_size)

    def predict_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities of shape (len(texts), len(classes))."""
        rows = list(self.predict_proba(texts))
        if not rows:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return np.stack(rows)

    def _score_window(self, window: list[str], batch_size: int) -> list[np.ndarray]:
        """Score the unique texts of a window once each, then fan results out in input order."""
        slot_of: dict[str, int] = {}
        for text in window:
            slot_of.setdefault(text, len(slot_of))
        unique = list(slot_of)
        probs = self._score_unique(unique, batch_size)
        # Copies: two equal texts must not share one mutable row.
        return [probs[slot_of[text]].copy() for text in window]

    def _score_unique(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Probabilities for distinct texts: length-sorted batches, dynamic padding, no autograd."""
        sequences = encode(self.tokenizer, texts, self.max_length)
        order = sorted(range(len(texts)), key=lambda i: len(sequences[i]))
        out = np.empty((len(texts), len(self.classes)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                input_ids, mask = pad_batch([sequences[i] for i in rows], self._pad_id)
                logits = self.model(input_ids, mask).float()
                out[rows] = torch.softmax(logits / self.temperature, dim=-1).numpy()
        return out
