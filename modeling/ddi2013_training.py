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
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pad_sequence
from transformers import get_linear_schedule_with_warmup
from transformers.masking_utils import create_bidirectional_mask

from modeling.backbones import load_backbone
from modeling.config import reject_invalid
from modeling.ddi2013 import CLASSES, POSITIVE_CLASSES, DdiPair, render
from modeling.ddi2013_scoring import micro_prf
from modeling.devices import resolve_device
from modeling.training import class_weights


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


def _collate(cached: Cached, batch: Sequence[int]):
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
                scores = model(*_collate(cached, chunk)).float()
            probs[chunk] = (scores if logits else torch.softmax(scores, dim=-1)).cpu().numpy()
    model.train()
    return probs


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
            hidden, mask, e1, e2 = _collate(cached, batch)
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
