"""Benchmark: DDI Extraction 2013 relation extraction on a few CPU cores, shared-task scoring.

One run does:
1. load ``ddi2013_pairs.csv`` (train 27,792 / test 5,716 pairs) and apply the negative-instance
   filter (modeling.ddi2013: same drug, synonym, a drug as special case of a group, coordinated
   list) to BOTH splits the same way; what each rule removes, and how many positive pairs it
   drops, is printed. A filtered test pair counts as predicted negative;
2. carve a dev split (whole documents, 10% of the kept train pairs) from the train split: it
   picks the epoch (the test split never chooses anything);
3. speed, in one run: the machine's matmul GFLOP/s (fp32 and bf16) at the thread count used, the
   fp32 FLOP limit for this encoder (6 x non-embedding parameters per token, the usual training
   estimate), a plain transformers + peft LoRA loop on the same texts (the baseline: all six
   layers, fp32, batches of 16 padded per batch), and our recipe (modeling.ddi2013_training:
   frozen lower layers computed once, LoRA in the top layers, length-bucketed batches, bf16
   autocast). Examples/s are printed with CPU-seconds: on a shared box wall time alone says
   little;
4. train on the whole train split (minus dev and filtered pairs), score all 5,716 test pairs:
   micro P/R/F1 over mechanism/effect/advise/int, per class, and the confusion matrix;
5. the confidence issue's row: a temperature and the app's confidence model fitted on the dev
   split's predictions; on the kept test pairs the ECE of the raw softmax top probability and of
   the calibrated confidences, and the AUROC of 1 - confidence for "predicted wrong".

    nice -n 10 .venv/bin/python bench/ddi2013.py            # the whole-train-split run
    .venv/bin/python bench/ddi2013.py --loop [--rounds 8] [--max-train POOL] [--max-test N]
                                                            # the review loop (see below)
    .venv/bin/python bench/ddi2013.py --budget              # CI size: well under 5 minutes
    [--max-train N] [--max-test N] [--epochs 4] [--style blind|markers|blind-markers]
    [--pooling entity|mean] [--train-layers 3] [--fp32] [--threads 1] [--no-filter]

``--loop`` simulates the review loop instead (modeling.ddi2013_loop): from ``--start`` 500
labelled train pairs, ``--rounds`` rounds of ``--per-round`` 100 reviews answered from the corpus
labels, the app's queue order vs lowest softmax vs random, test micro-F1 after each round; the
pool is the kept train split (``--max-train`` samples it), plotted to bench/out/ddi2013_loop.png.

The JSON lands in bench/out/ddi2013.json or ddi2013_loop.json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _measure import DATA, OUT, peak_rss_mib, print_table  # noqa: E402

CORPUS = DATA / "ddi2013_pairs.csv"
ANCHORS = [
    ("FBK-irst (best system of the 2013 shared task, kernel methods)", "0.651"),
    ("R-BERT + BioBERT / PubMedBERT fine-tuning (110M biomedical backbones)", "~0.81-0.82"),
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def matmul_gflops(threads: int, dtype_name: str, size: int = 1024, seconds: float = 1.5):
    """(GFLOP per second, GFLOP per CPU-second) of a square torch matmul at `threads` threads.

    The best of short rounds; on a shared box the per-CPU-second figure is the machine's, the
    per-second one what this process got.
    """
    import torch

    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b
    best_wall, best_cpu, end = 0.0, 0.0, time.perf_counter() + seconds
    flop = 4 * 2 * size**3 / 1e9
    while time.perf_counter() < end:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(4):
            a @ b
        best_wall = max(best_wall, flop / (time.perf_counter() - wall))
        best_cpu = max(best_cpu, flop / max(time.process_time() - cpu, 1e-9))
    return best_wall, best_cpu


def encoder_parameters(backbone: str) -> tuple[int, int]:
    """(all parameters, non-embedding parameters) of the backbone encoder."""
    from modeling.backbones import load_backbone

    _, model = load_backbone(backbone)
    total = sum(p.numel() for p in model.parameters())
    body = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    return total, body


def baseline_loop(
    texts: list[str],
    labels: list[int],
    backbone: str,
    steps: int,
    threads: int,
    seed: int,
    device: str = "cpu",
):
    """A plain transformers + peft LoRA loop: rate, CPU rate and mean padded tokens per example.

    AutoModelForSequenceClassification on the same backbone, LoRA r=8 in all layers (query, key,
    value, dense: the app's TrainConfig), fp32, AdamW, batches of 16 in random order padded to
    their own longest text (the tokenizer's dynamic padding).
    """
    import warnings

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from modeling.backbones import resolve_backbone

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    path = resolve_backbone(backbone).path
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    hf_logging.set_verbosity_error()  # the new head's "MISSING" load report is expected
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=5, local_files_only=True
    )
    lora = LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["query", "key", "value", "dense"]
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        model = get_peft_model(model, lora).to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    rng = random.Random(seed)
    order = rng.sample(range(len(texts)), min(len(texts), 16 * (steps + 1)))
    batches = [order[i : i + 16] for i in range(0, len(order), 16)]
    model.train()

    def step(batch):
        enc = tokenizer(
            [texts[i] for i in batch],
            truncation=True,
            max_length=128,
            padding=True,
            return_tensors="pt",
        )
        enc = {k: v.to(device) for k, v in enc.items()}
        out = model(**enc, labels=torch.as_tensor([labels[i] for i in batch], device=device))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        return int(enc["input_ids"].numel())

    step(batches[0])  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    padded = sum(step(b) for b in batches[1:])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = 16 * (len(batches) - 1)
    return {"examples": n, "wall_s": wall, "cpu_s": cpu, "padded_tokens_per_example": padded / n}


def confusion(truth: list[str], guess: list[str], classes: list[str]) -> list[list[int]]:
    """Rows: true class, columns: predicted class."""
    index = {c: i for i, c in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    for t, g in zip(truth, guess, strict=True):
        matrix[index[t]][index[g]] += 1
    return matrix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", action="store_true", help="CI size (minutes, not an hour)")
    parser.add_argument("--max-train", type=int, default=None, help="train pairs (seeded sample)")
    parser.add_argument("--max-test", type=int, default=None, help="test pairs (seeded sample)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--style", default=None, help="blind, markers or blind-markers")
    parser.add_argument("--pooling", default=None, help="entity or mean")
    parser.add_argument("--train-layers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    parser.add_argument("--no-filter", action="store_true", help="no negative-instance filter")
    parser.add_argument("--baseline-steps", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON (bench/out/ddi2013*.json)")
    loop = parser.add_argument_group("the review loop (--loop)")
    loop.add_argument("--loop", action="store_true", help="simulate the review loop instead")
    loop.add_argument("--rounds", type=int, default=None, help="review rounds (8; budget 2)")
    loop.add_argument("--start", type=int, default=500, help="labelled train pairs at round 0")
    loop.add_argument("--per-round", type=int, default=100, help="reviews per round")
    loop.add_argument("--strategies", default="app,lowest-softmax,random")
    args = parser.parse_args()
    if args.out is None:
        args.out = OUT / ("ddi2013_loop.json" if args.loop else "ddi2013.json")
    if args.rounds is None:
        args.rounds = 2 if args.budget else 8
    if args.budget:
        args.max_train = args.max_train or 1200
        args.max_test = args.max_test or 600
        args.epochs = args.epochs or 1
        args.baseline_steps = args.baseline_steps or 6

    import torch

    from modeling.calibration import softmax_with_temperature
    from modeling.ddi2013 import CLASSES, POSITIVE_CLASSES, apply_filter, filter_report, load_pairs
    from modeling.ddi2013_model import RecipeConfig, encode_pairs
    from modeling.ddi2013_scoring import micro_prf
    from modeling.ddi2013_training import dev_split, predict_pairs, train_recipe

    config = RecipeConfig()
    overrides = {
        "epochs": args.epochs,
        "style": args.style,
        "pooling": args.pooling,
        "train_layers": args.train_layers,
        "threads": args.threads,
    }
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if args.fp32:
        config = replace(config, bf16=False)
    from modeling.ddi2013_model import resolve_precision
    from modeling.devices import native_bf16, resolve_device

    device = resolve_device(os.environ.get("DDI_DEVICE"))
    if config.bf16 and not native_bf16(device):
        log(f"{device} has no native bf16 (torch would emulate it, slower than fp32): fp32 run")
    config = resolve_precision(config, device)
    rules = () if args.no_filter else None

    started = time.perf_counter()
    pairs = load_pairs(CORPUS)
    report = filter_report(pairs)
    train_all = [p for p in pairs if p.split == "train" and p.label != "unknown"]
    test = [p for p in pairs if p.split == "test"]
    if args.max_test is not None and args.max_test < len(test):
        test = random.Random(config.seed).sample(test, args.max_test)
    filter_args = {} if rules is None else {"rules": rules}
    kept_train, removed_train = apply_filter(train_all, **filter_args)
    kept_test, removed_test = apply_filter(test, **filter_args)
    train, dev = dev_split(kept_train, 0.1, config.seed, lambda p: p.sentence_id.rsplit(".", 1)[0])
    dev_ids = {p.sentence_id.rsplit(".", 1)[0] for p in dev}
    dev_removed = [p for p in removed_train if p.sentence_id.rsplit(".", 1)[0] in dev_ids]
    if args.max_train is not None and args.max_train < len(train):
        train = random.Random(config.seed).sample(train, args.max_train)
        dev = random.Random(config.seed).sample(dev, min(len(dev), max(args.max_train // 4, 200)))
        dev_removed = []
    log(
        f"train {len(train)} / dev {len(dev)} (+{len(dev_removed)} filtered) / "
        f"test {len(kept_test)} kept + {len(removed_test)} filtered"
    )

    if args.loop:
        _loop(args, config, train, dev, dev_removed, kept_test, removed_test)
        return

    # -- speed: machine, FLOP limit, baseline ----------------------------------------------------
    threads = config.threads
    gflops = {d: matmul_gflops(threads, d) for d in ("float32", "bfloat16")}
    n_all, n_body = encoder_parameters(config.backbone)
    from modeling.backbones import load_backbone

    tokenizer, _ = load_backbone(config.backbone)
    encoded = encode_pairs(tokenizer, train, config.style, config.max_length)
    mean_tokens = sum(len(e.ids) for e in encoded) / len(encoded)
    flop_per_example = 6 * n_body * mean_tokens
    limit = gflops["float32"][0] * 1e9 / flop_per_example
    limit_cpu = gflops["float32"][1] * 1e9 / flop_per_example
    base_texts = [t.text for t in _rendered(train, "blind")]
    index = {c: i for i, c in enumerate(CLASSES)}
    baseline = baseline_loop(
        base_texts,
        [index[p.label] for p in train],
        config.backbone,
        args.baseline_steps or 20,
        threads,
        config.seed,
        str(device),
    )
    log(
        f"baseline {baseline['examples'] / baseline['wall_s']:.1f} ex/s, "
        f"{baseline['examples'] / baseline['cpu_s']:.1f} ex/CPU-s"
    )

    # -- our training -----------------------------------------------------------------------------
    result = train_recipe(train, dev, config, dev_removed=dev_removed, log=log, device=str(device))
    loop = result.timings["train_loop"]
    once = result.timings["frozen_layers_once"]
    test_logits = predict_pairs(result, kept_test, config, logits=True)
    probs = softmax_with_temperature(test_logits, 1.0)
    calibration = _calibration(result, train, dev, kept_test, test_logits, config.style)
    guess = [CLASSES[k] for k in probs.argmax(axis=1)] + ["negative"] * len(removed_test)
    truth = [p.label for p in kept_test] + [p.label for p in removed_test]
    scores = micro_prf(truth, guess, positive_classes=POSITIVE_CLASSES)
    matrix = confusion(truth, guess, list(CLASSES))
    total_s = time.perf_counter() - started

    ours_rate = loop["examples"] / loop["wall_s"]
    ours_cpu_rate = loop["examples"] / loop["cpu_s"]
    # Amortised: the one pass through the frozen layers (train + dev) charged to the epochs.
    amortised = loop["examples"] / (loop["wall_s"] + once["wall_s"])
    amortised_cpu = loop["examples"] / (loop["cpu_s"] + once["cpu_s"])
    base_rate = baseline["examples"] / baseline["wall_s"]
    base_cpu_rate = baseline["examples"] / baseline["cpu_s"]
    out = {
        "what": "whole train split" if args.max_train is None else f"{len(train)} train pairs",
        "config": config.to_dict(),
        "filter": report if rules is None else "off",
        "train_pairs": len(train),
        "dev_pairs": len(dev),
        "test_pairs": len(test),
        "test_filtered": len(removed_test),
        "dev_history": result.history,
        "best_epoch": result.best_epoch,
        "scores": scores,
        "confusion_matrix": {"classes": list(CLASSES), "rows_true": matrix},
        "calibration": calibration,
        "speed": {
            "threads": threads,
            "device": str(device),
            "matmul_gflops": gflops,
            "encoder_parameters": n_all,
            "encoder_non_embedding_parameters": n_body,
            "mean_tokens_per_example": mean_tokens,
            "fp32_limit_examples_per_s": limit,
            "fp32_limit_examples_per_cpu_s": limit_cpu,
            "baseline": baseline,
            "ours_examples_per_s": ours_rate,
            "ours_examples_per_cpu_s": ours_cpu_rate,
            "ours_amortised_examples_per_s": amortised,
            "ours_amortised_examples_per_cpu_s": amortised_cpu,
            "timings": result.timings,
        },
        "total_wall_s": total_s,
        "peak_rss_mib": peak_rss_mib(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))

    print(
        f"\nDDI-2013 ({out['what']}; dev {len(dev)}; test {len(test)} pairs of which "
        f"{len(removed_test)} filtered = predicted negative), backbone {config.backbone}, "
        f"style {config.style}, pooling {config.pooling}, LoRA r={config.lora_r} in the top "
        f"{config.train_layers} layers, {'bf16' if config.bf16 else 'fp32'}, "
        f"{config.epochs} epochs (best on dev: {result.best_epoch}), device {device}, "
        f"{torch.get_num_threads()} torch thread(s)\n"
    )
    if rules is None:
        rows = []
        for split in ("train", "test"):
            part = report[split]
            removed = ", ".join(f"{r} {n}" for r, n in part["removed"].items())
            rows.append([split, part["pairs"], part["kept"], removed, part["positives_removed"]])
        print_table(["split", "pairs", "kept", "removed by rule", "positives removed"], rows)
        print()
    print_table(
        ["epoch", "dev micro-F1", "s", "CPU-s"],
        [
            [h["epoch"], f"{h['dev_micro_f1']:.3f}", f"{h['epoch_wall_s']:.0f}",
             f"{h['epoch_cpu_s']:.0f}"]
            for h in result.history
        ],
    )  # fmt: skip
    print()
    micro = scores["micro"]
    rows = [
        [name, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", s["support"]]
        for name, s in scores["per_class"].items()
    ]
    rows.append(
        ["micro (4 positive classes)", f"{micro['precision']:.3f}", f"{micro['recall']:.3f}",
         f"{micro['f1']:.3f}", sum(s["support"] for s in scores["per_class"].values())]
    )  # fmt: skip
    rows.append(["macro-F1 (mean of the 4)", "", "", f"{scores['macro_f1']:.3f}", ""])
    print_table(["class", "precision", "recall", "F1", "support"], rows)
    print()
    print_table(
        ["true \\ predicted", *CLASSES],
        [[c, *row] for c, row in zip(CLASSES, matrix, strict=True)],
    )
    print()
    _print_calibration(calibration)
    print()
    print_table(
        ["training speed", "examples/s", "CPU-s per 1k ex", "examples/CPU-s"],
        [
            [
                f"CPU fp32 limit: 6N/token, N={n_body / 1e6:.1f}M, {mean_tokens:.0f} tok/ex, "
                f"matmul {gflops['float32'][0]:.0f} GFLOP/s, {gflops['float32'][1]:.0f}/CPU-s "
                f"(bf16 {gflops['bfloat16'][0]:.0f}, {gflops['bfloat16'][1]:.0f})",
                f"{limit:.1f}",
                f"{1000 / limit_cpu:.0f}",
                f"{limit_cpu:.1f}",
            ],
            [
                "baseline: transformers + peft LoRA, fp32, batch 16",
                f"{base_rate:.1f}",
                f"{1000 / base_cpu_rate:.0f}",
                f"{base_cpu_rate:.1f}",
            ],
            ["ours: per epoch", f"{ours_rate:.1f}", f"{1000 / ours_cpu_rate:.0f}",
             f"{ours_cpu_rate:.1f}"],
            ["ours: amortised with the frozen pass", f"{amortised:.1f}",
             f"{1000 / amortised_cpu:.0f}", f"{amortised_cpu:.1f}"],
        ],
    )  # fmt: skip
    print(
        f"\nwall {total_s:.0f} s in all (training loop {loop['wall_s']:.0f} s, "
        f"frozen pass {once['wall_s']:.0f} s), peak RSS {peak_rss_mib():.0f} MiB"
    )
    print()
    print_table(
        ["published anchor", "micro-F1"],
        [*ANCHORS, [f"ours ({config.backbone}, this run: {out['what']})", f"{micro['f1']:.3f}"]],
    )


def _calibration(result, train, dev, kept_test, test_logits, style) -> dict:
    """The confidence issue's row: T and the app's confidence model fitted on the dev split's
    predictions (the kept epoch), ECE and error AUROC on the kept test pairs."""
    from modeling.ddi2013 import CLASSES
    from modeling.ddi2013_calibration import confidence_report

    index = {c: i for i, c in enumerate(CLASSES)}
    return confidence_report(
        result.dev_logits,
        [index[p.label] for p in dev],
        test_logits,
        [index[p.label] for p in kept_test],
        dev_texts=[t.text for t in _rendered(dev, style)],
        test_texts=[t.text for t in _rendered(kept_test, style)],
        train_texts=[t.text for t in _rendered(train, style)],
    )


def _print_calibration(calibration: dict) -> None:
    def fmt(value):
        return "-" if value is None else f"{value:.3f}"

    test, dev = calibration["test"], calibration["dev"]
    names = {
        "raw": "raw softmax top probability",
        "temperature": f"temperature T={calibration['temperature']:.2f} (fitted on dev logits)",
        "app": "app confidence model (T-scaled top + novelty, fitted on dev)",
    }
    print(
        f"confidence, fitted on {dev['pairs']} dev pairs, scored on the {test['pairs']} kept "
        f"test pairs (accuracy {test['accuracy']:.3f}); target test ECE <= 0.05"
    )
    print_table(
        ["confidence", "test ECE", "test AUROC (1-conf -> wrong)", "dev ECE", "dev AUROC"],
        [
            [names[m], fmt(test[m]["ece"]), fmt(test[m]["error_auroc"]), fmt(dev[m]["ece"]),
             fmt(dev[m]["error_auroc"])]
            for m in ("raw", "temperature", "app")
        ],
    )  # fmt: skip


def _loop(args, config, pool, dev, dev_removed, kept_test, removed_test) -> None:
    """--loop: modeling.ddi2013_loop over the (sampled) train pool; table, JSON and a plot."""
    from modeling.ddi2013_loop import run_loop

    started = time.perf_counter(), time.process_time()
    strategies = [s for s in args.strategies.split(",") if s]
    result = run_loop(
        pool, dev, kept_test, config, test_removed=removed_test, dev_removed=dev_removed,
        start=args.start, per_round=args.per_round, rounds=args.rounds, strategies=strategies,
        log=log,
    )  # fmt: skip
    result["config"] = config.to_dict()
    result["wall_s"] = time.perf_counter() - started[0]
    result["cpu_s"] = time.process_time() - started[1]
    result["load_average"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    curves = result["curves"]
    print(
        f"\nDDI-2013 review loop: pool {result['pool_pairs']} train pairs, dev {len(dev)} "
        f"(epoch choice and the app's confidence), test {result['test_pairs']} pairs; start "
        f"{args.start} labels, {args.rounds} rounds of {args.per_round} reviews answered from the "
        f"corpus labels; {config.epochs} epoch(s) per training; {result['wall_s']:.0f} s wall, "
        f"{result['cpu_s']:.0f} CPU-s, load average {result['load_average'][0]:.1f}\n"
    )
    print_table(
        ["round", "labels", *[f"{s} F1" for s in strategies],
         *[f"{s} new positives" for s in strategies]],
        [
            [r, curves[strategies[0]]["rounds"][r]["labels"],
             *[f"{curves[s]['rounds'][r]['test_micro_f1']:.3f}" for s in strategies],
             *[curves[s]["rounds"][r].get("added_positive", "") for s in strategies]]
            for r in range(args.rounds + 1)
        ],
    )  # fmt: skip
    if "app" in curves and "random" in curves:
        above = [
            r for r in range(1, args.rounds + 1)
            if curves["app"]["rounds"][r]["test_micro_f1"]
            > curves["random"]["rounds"][r]["test_micro_f1"]
        ]  # fmt: skip
        print(f"\napp order above random at {len(above)} of {args.rounds} rounds after round 0")
    plot = args.out.with_suffix(".png")
    _plot_loop(result, strategies, plot)
    print(f"plot: {plot}")


def _plot_loop(result: dict, strategies: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for s in strategies:
        rounds = result["curves"][s]["rounds"]
        ax.plot([r["labels"] for r in rounds], [r["test_micro_f1"] for r in rounds], "o-", label=s)
    ax.set_xlabel("labelled train pairs")
    ax.set_ylabel("test micro-F1 (4 positive classes)")
    ax.set_title(f"DDI-2013 review loop, pool {result['pool_pairs']} pairs")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _rendered(pairs, style):
    from modeling.ddi2013 import render

    return [render(p, style) for p in pairs]


if __name__ == "__main__":
    main()
