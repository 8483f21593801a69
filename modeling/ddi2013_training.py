"""A fast LoRA recipe for DDI-2013 relation extraction on a few CPU cores.

Where the time of the app's training loop goes on DDI-2013 sentences (~90 MiniLM tokens): the
forward and backward of all six layers at fp32, for every epoch. This recipe removes the waste:

- **frozen lower layers, computed once**: LoRA adapters sit in the top ``train_layers`` layers
  only; the embeddings and the layers below are frozen, so their output per sentence is the same
  in every epoch. It is computed once (inference mode, no autograd graph) and each optimisation
  step runs the top layers only, forward and backward;
- **length-bucketed batches with dynamic padding**: batches are drawn from runs of similar
  length and padded to their own longest sentence, not to ``max_length``;
- **bf16 autocast on CPU** (AVX512-BF16 cores) where the dev score holds (``bf16`` flag), and
  only where the hardware has it: on a CPU without native bf16 (AVX2 only) torch emulates the
  bf16 matmuls in scalar code, many times slower than fp32, so there the run is fp32
  (resolve_precision; the bench prints which);
- **one thread per process by default**: on 2 cores shared with other work, two threads spend
  more CPU-seconds per example than one (measured in bench/ddi2013.py);
- **no per-step Python overhead**: no per-step callbacks, ``loss.item()`` only every
  ``log_every`` steps, batches padded by ``pad_sequence``.

The head reads the mean of the tokens together with the hidden states at the two entity starts
(the marker, or the first placeholder token), the R-BERT / "entity start" pooling of relation
extraction (``pooling="entity"``; ``"mean"`` is the app's pooling).

Epochs are chosen on a dev split carved from the train split (whole documents, never the test
split): the state with the best dev micro-F1 is kept.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F
from transformers import get_linear_schedule_with_warmup

from modeling.backbones import load_backbone
from modeling.ddi2013 import CLASSES, POSITIVE_CLASSES, DdiPair
from modeling.ddi2013_model import (
    Cached,
    PairClassifier,
    RecipeConfig,
    SplitEncoder,
    bucketed_batches,
    cache_bottom,
    collate,
    encode_pairs,
    predict,
    resolve_precision,
)
from modeling.ddi2013_scoring import micro_prf
from modeling.devices import resolve_device
from modeling.training import class_weights


def class_weight_vector(labels: Sequence[int], num_classes: int, mode: str) -> torch.Tensor | None:
    """None, or modeling.training's inverse-frequency weights (optionally their square root).

    The loss is a weighted mean, so how the weights are scaled does not matter, only their
    ratios."""
    if mode == "none":
        return None
    weights = class_weights(labels, num_classes)
    return weights.sqrt() if mode == "sqrt" else weights


# -- training -------------------------------------------------------------------------------------


@dataclass
class RecipeResult:
    """The trained model, its dev history, and the time and CPU time each stage took."""

    model: PairClassifier
    tokenizer: object
    history: list[dict]
    best_epoch: int
    timings: dict
    dev_logits: np.ndarray | None = None  # the kept epoch's logits on the dev pairs, in order


def build(config: RecipeConfig) -> tuple[object, PairClassifier]:
    """Tokenizer and a fresh classifier (seeded)."""
    torch.manual_seed(config.seed)
    tokenizer, bert = load_backbone(config.backbone)
    encoder = SplitEncoder(bert, config.train_layers, config)
    return tokenizer, PairClassifier(encoder, len(CLASSES), config.pooling)


def _stopwatch() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(mark: tuple[float, float]) -> dict:
    wall, cpu = _stopwatch()
    return {"wall_s": wall - mark[0], "cpu_s": cpu - mark[1]}


def score_probs(pairs: Sequence[DdiPair], probs: np.ndarray, removed: Sequence[DdiPair]) -> dict:
    """Shared-task scores of kept pairs' predictions plus the filtered pairs as negatives."""
    predicted = [CLASSES[k] for k in probs.argmax(axis=1)]
    truth = [p.label for p in pairs] + [p.label for p in removed]
    guess = predicted + ["negative"] * len(removed)
    return micro_prf(truth, guess, positive_classes=POSITIVE_CLASSES)


def train_recipe(
    train: Sequence[DdiPair],
    dev: Sequence[DdiPair],
    config: RecipeConfig,
    *,
    dev_removed: Sequence[DdiPair] = (),
    log: Callable[[str], None] = print,
    device: str | None = None,
) -> RecipeResult:
    """Train on `train` (filtered already), keep the epoch with the best dev micro-F1.

    `dev_removed`: dev pairs the negative filter dropped; they count as predicted negative in
    the dev score, as the test pairs do. `device`: modeling.devices.resolve_device (``auto``:
    a CUDA GPU when torch sees one; bf16 autocast then runs on it).
    """
    target = resolve_device(device)
    config = resolve_precision(config, target)
    torch.set_num_threads(config.threads)
    index = {name: i for i, name in enumerate(CLASSES)}
    unknown = sorted({p.label for p in train} - set(index))
    if unknown:
        raise ValueError(f"train labels outside {CLASSES}: {unknown}")
    timings: dict = {}
    mark = _stopwatch()
    tokenizer, model = build(config)
    model = model.to(target)
    pad_id = tokenizer.pad_token_id or 0
    enc_train = encode_pairs(tokenizer, train, config.style, config.max_length)
    enc_dev = encode_pairs(tokenizer, dev, config.style, config.max_length)
    timings["build_and_tokenize"] = _since(mark)
    mark = _stopwatch()
    cached = cache_bottom(model, enc_train, pad_id, config.bf16)
    cached_dev = cache_bottom(model, enc_dev, pad_id, config.bf16)
    timings["frozen_layers_once"] = _since(mark)
    return fit_cached(
        model, tokenizer, cached, train, cached_dev, dev, config,
        dev_removed=dev_removed, log=log, timings=timings,
    )  # fmt: skip


def subset(cached: Cached, rows: Sequence[int]) -> Cached:
    """The cached examples at `rows`, in that order (no copy of the hidden states)."""
    index = torch.as_tensor(list(rows), dtype=torch.long, device=cached.e1.device)
    return Cached([cached.hidden[i] for i in rows], cached.e1[index], cached.e2[index])


def fit_cached(
    model: PairClassifier,
    tokenizer,
    cached: Cached,
    train: Sequence[DdiPair],
    cached_dev: Cached,
    dev: Sequence[DdiPair],
    config: RecipeConfig,
    *,
    dev_removed: Sequence[DdiPair] = (),
    log: Callable[[str], None] = print,
    timings: dict | None = None,
) -> RecipeResult:
    """train_recipe's optimisation over hidden states the frozen bottom already produced
    (`cached` for `train`, `cached_dev` for `dev`, both from cache_bottom): a fresh `model`
    (build) is trained, the epoch with the best dev micro-F1 kept. The bottom is the pretrained
    backbone's, the same for every model built from one config, so one cache serves many
    trainings (bench/ddi2013.py --loop)."""
    target = model.head.weight.device
    timings = {} if timings is None else timings
    index = {name: i for i, name in enumerate(CLASSES)}
    labels = torch.as_tensor([index[p.label] for p in train], device=target)
    weights = class_weight_vector(labels.tolist(), len(CLASSES), config.class_weighting)
    weights = weights.to(target) if weights is not None else None
    params_lora = [p for n, p in model.named_parameters() if p.requires_grad and "lora" in n]
    params_head = [p for n, p in model.named_parameters() if p.requires_grad and "lora" not in n]
    optimizer = torch.optim.AdamW(
        [
            {"params": params_lora, "lr": config.learning_rate},
            {"params": params_head, "lr": config.head_learning_rate},
        ],
        weight_decay=config.weight_decay,
    )
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = steps_per_epoch * config.epochs
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_fraction * total), total
    )
    history, best, best_state = [], (-1.0, 0), None
    train_marks = {"wall_s": 0.0, "cpu_s": 0.0, "examples": 0, "tokens": 0}
    model.train()
    lengths = cached.lengths
    for epoch in range(1, config.epochs + 1):
        mark = _stopwatch()
        batches = bucketed_batches(lengths, config.batch_size, config.seed * 1000 + epoch)
        running = []
        for step, batch in enumerate(batches, start=1):
            hidden, mask, e1, e2 = collate(cached, batch)
            with torch.autocast(target.type, dtype=torch.bfloat16, enabled=config.bf16):
                logits = model(hidden, mask, e1, e2)
            loss = F.cross_entropy(logits.float(), labels[batch], weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running.append(loss.detach())
            train_marks["tokens"] += int(mask.sum())
            if step % config.log_every == 0:
                log(
                    f"  epoch {epoch} step {step}/{len(batches)} "
                    f"loss {torch.stack(running).mean().item():.3f}"
                )
                running = []
        spent = _since(mark)
        train_marks["wall_s"] += spent["wall_s"]
        train_marks["cpu_s"] += spent["cpu_s"]
        train_marks["examples"] += len(train)
        mark = _stopwatch()
        probs = predict(model, cached_dev, config.bf16)
        scores = score_probs(dev, probs, dev_removed)
        history.append(
            {
                "epoch": epoch,
                "dev_micro_f1": scores["micro"]["f1"],
                "dev_micro": scores["micro"],
                "epoch_wall_s": spent["wall_s"],
                "epoch_cpu_s": spent["cpu_s"],
                "dev_eval": _since(mark),
            }
        )
        log(
            f"epoch {epoch}: dev micro-F1 {scores['micro']['f1']:.3f} "
            f"(P {scores['micro']['precision']:.3f} R {scores['micro']['recall']:.3f}), "
            f"{len(train) / spent['wall_s']:.1f} ex/s, {len(train) / spent['cpu_s']:.1f} ex/CPU-s"
        )
        if scores["micro"]["f1"] > best[0]:
            best = (scores["micro"]["f1"], epoch)
            best_state = {
                k: v.detach().clone() for k, v in model.state_dict().items() if _trainable(k)
            }
    if best_state is not None:
        model.load_state_dict(best_state, strict=False)
    dev_logits = predict(model, cached_dev, config.bf16, logits=True) if len(dev) else None
    timings["train_loop"] = train_marks
    timings["device"] = str(target)
    return RecipeResult(model, tokenizer, history, best[1], timings, dev_logits)


_TRAINABLE = re.compile(r"lora_|^head\.")


def _trainable(key: str) -> bool:
    return bool(_TRAINABLE.search(key))


def predict_pairs(
    result: RecipeResult, pairs: Sequence[DdiPair], config: RecipeConfig, logits: bool = False
):
    """Probabilities (or logits) of `pairs` under the trained model (bottom layers run once,
    then the top)."""
    torch.set_num_threads(config.threads)
    pad_id = result.tokenizer.pad_token_id or 0
    encoded = encode_pairs(result.tokenizer, pairs, config.style, config.max_length)
    cached = cache_bottom(result.model, encoded, pad_id, config.bf16)
    return predict(result.model, cached, config.bf16, logits=logits)


def dev_split(
    pairs: Sequence[DdiPair], fraction: float, seed: int, doc_of: Callable[[DdiPair], str]
) -> tuple[list[DdiPair], list[DdiPair]]:
    """(train, dev): whole documents to dev until `fraction` of the pairs; seeded."""
    docs = sorted({doc_of(p) for p in pairs})
    random.Random(seed).shuffle(docs)
    target = fraction * len(pairs)
    per_doc: dict[str, int] = {}
    for p in pairs:
        per_doc[doc_of(p)] = per_doc.get(doc_of(p), 0) + 1
    chosen, count = set(), 0
    for doc in docs:
        if count >= target:
            break
        chosen.add(doc)
        count += per_doc[doc]
    return [p for p in pairs if doc_of(p) not in chosen], [p for p in pairs if doc_of(p) in chosen]
