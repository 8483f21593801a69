"""Streaming, calibrated inference over a saved model version.

Speed comes from work not done: identical texts within a window are scored once (DrugBank
sentences repeat a few dozen patterns), unique texts are tokenized in one call and sorted by
length so each batch pads only to its own longest text, LoRA is merged into the backbone weights,
and autograd is off.

Backends (``Predictor.load(..., backend=...)``, default ``"torch"``; the app passes its setting
``DDI_INFERENCE_BACKEND``, the command line its ``--backend`` option):

- ``torch``: fp32 PyTorch, the reference.
- ``torch-bf16``: the merged weights cast to bfloat16, where the device runs bf16 natively (a
  CPU with AVX512-BF16 or AMX, e.g. AMD Zen 4 or Intel Sapphire Rapids; a CUDA GPU with bf16);
  elsewhere torch would emulate bf16 in slow scalar code, so it warns and runs fp32. Measured on
  the DDI-2013 test split (README "Inference"): same top class as fp32 on every row, probabilities
  within a few hundredths.
- ``onnx``: the merged model exported to ONNX and run by ONNX Runtime, fp32 (same probabilities
  as torch within 1e-4). The export is offline work (modeling/export.py: ``python -m modeling
  export-onnx``, or the app's training job when its backend is an ONNX one); loading never
  writes into a model folder.
- ``onnx-int8``: ONNX Runtime dynamic int8 as a cascade: the texts whose int8 top-two margin is
  below the recorded recheck margin are scored again by ONNX fp32. Used only where model.json
  ``"onnx_int8"`` records a measured agreement of that cascade with torch fp32 >= 99.5% on texts
  the margin was not chosen on (``python -m modeling export-onnx --input``); otherwise ONNX fp32
  with a warning.

Whenever ONNX Runtime is missing or the folder has no matching export, the Predictor warns and
uses torch fp32.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from modeling import onnx_runtime
from modeling.artifacts import VOCABULARY_FILE, ModelVersionInfo, read_model_version
from modeling.backends import resolve_backend
from modeling.classifier import (
    MeanPoolClassifier,
    build_classifier,
    load_trainable_state,
    merge_adapters,
)
from modeling.devices import native_bf16, resolve_device
from modeling.encoding import encode, pad_arrays, pad_id_of
from modeling.mirror import direction_evidence
from modeling.uncertainty import (
    ConfidenceModel,
    LabelledSet,
    Scores,
    direction_disagreement,
    direction_twin,
    feature_matrix,
    follow_labels,
    vote_share,
)

WINDOW_SIZE = 4096
# Measured on 768 distinct DrugBank sentences, ONNX Runtime, 2 cores: CPU time 2.3 s at 32,
# 2.7 s at 64, 3.1 s at 128 (length-sorted batches gain nothing from more rows, cache loses).
DEFAULT_BATCH_SIZE = 32


class Predictor:
    """A loaded model version: texts (already blinded) in, calibrated probabilities out."""

    def __init__(
        self,
        *,
        model: MeanPoolClassifier | None,
        tokenizer: PreTrainedTokenizerBase,
        classes: list[str],
        temperature: float,
        model_dir: Path,
        max_length: int,
        quantized: bool = False,
        backend: str = "torch",
        scorer=None,
        device: torch.device | None = None,
        recheck: tuple[onnx_runtime.OnnxScorer, float] | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.classes = classes
        self.temperature = temperature
        self.model_dir = model_dir
        self.max_length = max_length
        self.quantized = quantized
        self.backend = backend
        self.scorer = scorer  # an OnnxScorer for the onnx backends, else None
        self.device = device or torch.device("cpu")  # of the torch model (ONNX runs on the CPU)
        # The int8 cascade: (the fp32 scorer, margin); texts whose top-two margin is below it
        # are scored again by fp32. ``rechecked`` counts them (distinct texts), for the record.
        self.recheck = recheck
        self.rechecked = 0
        self._pad_id = pad_id_of(tokenizer)

    @classmethod
    def load(
        cls,
        model_dir: Path,
        *,
        backend: str | None = None,
        check_gate: bool = True,
        device: str | None = None,
    ) -> Predictor:
        """Load a model version folder (backbone resolved offline, LoRA merged, eval mode).

        ``backend`` is one of modeling.backends.BACKENDS (see the module docstring). The int8
        path is used only if model.json records a measured agreement with fp32 of at least
        99.5%, otherwise a warning is issued and ONNX fp32 is used. ``check_gate=False`` skips
        that check (for the measurement itself). ``device`` (torch backend;
        modeling.devices.resolve_device): default ``auto``, a CUDA GPU when present; ONNX runs
        on the CPU. No side effect: the onnx backends read ``model_dir/onnx/`` as
        modeling.export wrote it.
        """
        model_dir = Path(model_dir)
        backend = resolve_backend(backend)
        info, state = read_model_version(model_dir)
        if "committee" in info.extra:
            members = [
                cls.load(model_dir / name, backend=backend, check_gate=check_gate, device=device)
                for name in info.extra["committee"]["members"]
            ]
            return CommitteePredictor.from_folder(model_dir, info, members)
        if backend.startswith("onnx"):
            predictor = cls._load_onnx(
                model_dir, info, int8=backend == "onnx-int8", check_gate=check_gate
            )
            if predictor is not None:
                return predictor
            backend = "torch"
        # Fixed seed: building draws fresh LoRA/head weights that are overwritten right after,
        # and the caller's random stream must not move.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            tokenizer, model = build_classifier(info.config, len(info.classes))
        load_trainable_state(model, state)
        model = merge_adapters(model).eval()
        target = resolve_device(device)
        model = model.to(target)
        if backend == "torch-bf16":
            if native_bf16(target):
                model = model.to(torch.bfloat16)
            else:
                warnings.warn(
                    f"{target} has no native bf16 (torch would emulate it, slower than fp32); "
                    "using torch fp32",
                    stacklevel=2,
                )
                backend = "torch"
        return cls(
            model=model,
            tokenizer=tokenizer,
            classes=list(info.classes),
            temperature=info.temperature,
            model_dir=model_dir,
            max_length=info.config.max_length,
            backend=backend,
            device=target,
        )

    @classmethod
    def _load_onnx(
        cls, model_dir: Path, info: ModelVersionInfo, *, int8: bool, check_gate: bool
    ) -> Predictor | None:
        """An ONNX Runtime Predictor, or None (after a warning) when torch must be used."""
        try:
            onnx_runtime.require_onnxruntime()
        except onnx_runtime.OnnxNotAvailable as error:
            warnings.warn(f"{error}; using torch fp32", stacklevel=3)
            return None
        if int8 and check_gate:
            refusal = onnx_runtime.int8_gate_refusal(info.extra)
            if refusal is not None:
                warnings.warn(f"{model_dir}: {refusal}; using ONNX fp32", stacklevel=3)
                int8 = False
        # The fp32 file first: it serves alone, or rechecks the int8 cascade's unsure texts.
        paths = {}
        for which in ("fp32", "int8") if int8 else ("fp32",):
            paths[which] = onnx_runtime.exported_file(model_dir, which, info.extra)
            if paths[which] is None:
                warnings.warn(
                    f"{model_dir}: no ONNX {which} export matching {onnx_runtime.MODEL_JSON} "
                    "(export it offline: `python -m modeling export-onnx --model DIR`); using "
                    "torch fp32",
                    stacklevel=3,
                )
                return None
        recheck = None
        # check_gate=False measures int8 alone (modeling.export chooses the margin from it).
        margin = onnx_runtime.recheck_margin_of(info.extra) if int8 and check_gate else 0.0
        if margin > 0:
            recheck = (onnx_runtime.OnnxScorer(paths["fp32"]), margin)
        path = paths["int8" if int8 else "fp32"]
        return cls(
            model=None,
            tokenizer=onnx_runtime.load_tokenizer(info.config.backbone),
            classes=list(info.classes),
            temperature=info.temperature,
            model_dir=model_dir,
            max_length=info.config.max_length,
            quantized=int8,
            backend="onnx-int8" if int8 else "onnx",
            scorer=onnx_runtime.OnnxScorer(path),
            recheck=recheck,
        )

    def predict_proba(
        self, texts: Iterable[str], *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> Iterator[np.ndarray]:
        """One float32 probability vector per text, in input order; memory bounded by a window."""
        iterator = iter(texts)
        while window := list(islice(iterator, WINDOW_SIZE)):
            yield from self._score_window(window, batch_size)

    def predict_batch(
        self, texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> np.ndarray:
        """Probabilities of shape (len(texts), len(classes))."""
        rows = list(self.predict_proba(texts, batch_size=batch_size))
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
        """Probabilities for distinct texts; with the int8 cascade, the texts under its margin
        are scored again by fp32."""
        sequences = encode(self.tokenizer, texts, self.max_length)
        out = self._score_sequences(sequences, batch_size, self._logits)
        if self.recheck is not None:
            fp32, margin = self.recheck
            unsure = np.flatnonzero(top_two_margin(out) < margin)
            if len(unsure):
                out[unsure] = self._score_sequences(
                    [sequences[i] for i in unsure], batch_size, fp32.logits
                )
            self.rechecked += len(unsure)
        return out

    def _score_sequences(
        self, sequences: list[list[int]], batch_size: int, logits_of
    ) -> np.ndarray:
        """Probabilities of token sequences: length-sorted batches, dynamic padding."""
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        out = np.empty((len(sequences), len(self.classes)), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            input_ids, mask = pad_arrays([sequences[i] for i in rows], self._pad_id)
            out[rows] = softmax(logits_of(input_ids, mask) / self.temperature)
        return out

    def score(self, texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE) -> Scores:
        """A single model (no committee): the confidence is its top probability, no signals."""
        probs = self.predict_batch(texts, batch_size=batch_size)
        confidence = probs.max(axis=1).astype(np.float64) if len(probs) else np.zeros(0)
        zeros = np.zeros(len(probs))
        return Scores(probs, confidence, 1.0 - confidence, zeros, zeros, zeros + 1.0, zeros)

    def _logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """float32 logits of one padded batch, from ONNX Runtime or torch."""
        if self.scorer is not None:
            return self.scorer.logits(input_ids, attention_mask)
        with torch.inference_mode():
            logits = self.model(
                torch.from_numpy(input_ids).to(self.device),
                torch.from_numpy(attention_mask).to(self.device),
            )
        return logits.float().cpu().numpy()


class CommitteePredictor:
    """The cross-fitted members of a model version, served together.

    Probabilities are the members' mean; confidence is the version's confidence model applied to
    (mean top probability, labelled or not, novelty, direction-twin disagreement); a labelled text
    is served its label's class (modeling.uncertainty). Two opposite classes: a labelled mirror
    sentence and direction words pointing both ways also count (modeling.mirror).
    """

    def __init__(
        self,
        *,
        members: list[Predictor],
        confidence_model: ConfidenceModel,
        labelled: LabelledSet,
        direction_probe: bool,
        model_dir: Path,
    ):
        self.members = members
        self.confidence_model = confidence_model
        self.labelled = labelled
        self.direction_probe = direction_probe
        self.model_dir = model_dir
        self.classes = members[0].classes
        self.backend = members[0].backend
        self.quantized = members[0].quantized
        self.device = members[0].device
        self.model = members[0].model

    @classmethod
    def from_folder(
        cls, model_dir: Path, info: ModelVersionInfo, members: list[Predictor]
    ) -> CommitteePredictor:
        committee = info.extra["committee"]
        document = json.loads((Path(model_dir) / VOCABULARY_FILE).read_text(encoding="utf-8"))
        return cls(
            members=members,
            confidence_model=ConfidenceModel.from_dict(committee["confidence_model"]),
            labelled=LabelledSet.from_dict(document),
            direction_probe=bool(committee.get("direction_probe")),
            model_dir=Path(model_dir),
        )

    def _member_probs(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """(members, n, C)."""
        return np.stack([m.predict_batch(texts, batch_size=batch_size) for m in self.members])

    def predict_proba(
        self, texts: Iterable[str], *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> Iterator[np.ndarray]:
        """The committee's mean probability vector per text, in input order (windowed)."""
        iterator = iter(texts)
        while window := list(islice(iterator, WINDOW_SIZE)):
            yield from self.predict_batch(window, batch_size=batch_size)

    def predict_batch(
        self, texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> np.ndarray:
        """Mean probabilities of the members, shape (len(texts), len(classes))."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return self._member_probs(texts, batch_size).mean(axis=0).astype(np.float32)

    def score(self, texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE) -> Scores:
        """Probabilities, calibrated confidence, uncertainty and its signals for each text."""
        texts = list(texts)
        if not texts:
            empty = np.zeros(0)
            return Scores(np.zeros((0, len(self.classes)), np.float32), *([empty] * 6))
        member_probs = self._member_probs(texts, batch_size)
        mean = member_probs.mean(axis=0)
        twin_probs, twins = None, []
        if self.direction_probe:
            twins = [direction_twin(text) for text in texts]
            rows = [i for i, twin in enumerate(twins) if twin is not None]
            twin_probs = np.full(mean.shape, np.nan)
            if rows:
                twin_probs[rows] = self._member_probs([twins[i] for i in rows], batch_size).mean(0)
        direction = direction_disagreement(mean, twin_probs)
        label_of = self.labelled.label_of(texts)
        seen = (label_of != -2).astype(np.float64)
        novel = self.labelled.novelty(texts)
        agreement = vote_share(member_probs, mean)
        features = feature_matrix(mean, novel, direction)
        confidence = self.confidence_model.confidence(features, mean.argmax(axis=1), label_of)
        served, mirror, mixed = mean, None, None
        if self.direction_probe:  # a labelled mirror, direction words both ways: modeling.mirror
            served, confidence, mirror, mixed = direction_evidence(
                mean, confidence, texts, twins, label_of, self.labelled
            )
        served, confidence = follow_labels(  # a labelled text: its label's class
            served, np.clip(confidence, 0.0, 1.0), label_of, self.confidence_model.seen_accuracy
        )
        signals = (novel, direction, agreement, seen, mirror, mean.argmax(axis=1), mixed)
        return Scores(served.astype(np.float32), confidence, 1.0 - confidence, *signals)


def top_two_margin(probs: np.ndarray) -> np.ndarray:
    """Top probability minus the second one, per row (1.0 for a single class)."""
    if probs.shape[1] < 2:
        return np.ones(len(probs), dtype=probs.dtype)
    top_two = np.partition(probs, -2, axis=1)[:, -2:]
    return top_two[:, 1] - top_two[:, 0]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, shifted by the row maximum so exp never overflows."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32, copy=False)
