"""Benchmark: transformers pipeline("text-classification") at batch size 32 vs our Predictor.

All engines score the same model version (bench/out/seed-model, trained by bench/train.py with the
defaults; trained here first if missing). The baseline wraps exactly the same merged weights,
mean pooling and temperature in a transformers PreTrainedModel, so the pipeline computes the same
probabilities: the comparison is about the inference engine, not the model. Both use
truncation to the model's max_length (64 tokens) and batch size 32.

Engines: ``pipeline`` (baseline), ours with ``torch`` fp32 (the reference), ``torch-bf16``
(bf16 weights where the CPU runs bf16 natively, AVX512-BF16/AMX; elsewhere the default run
leaves it out and says so, and naming it in ``--variants`` is an error), ``onnx`` (ONNX
Runtime fp32) and ``onnx-int8`` (ONNX Runtime dynamic int8 with its fp32 recheck of the texts
under the recorded margin). Torch dynamic int8 was measured (1.8x the pipeline vs fp32's 2.4x,
96.9 % same top class) and removed.

Three inputs (``--kinds``, default all):
- ``ddi2013``: the DDI-2013 test split's 5,716 pairs as the app blinds them (DRUG_A / DRUG_B /
  DRUG_OTHER; 5,664 distinct texts), the first ``--rows`` of a seeded shuffle of the distinct
  ones: free text, the input that matters for the 3x target;
- ``distinct``: the raw, un-blinded sample descriptions, de-duplicated (drug names make them
  distinct), the first ``--rows`` of them in file order: every text is distinct, so
  de-duplication cannot help; measures the engine itself.
- ``sample``: the blinded descriptions as the app scores them; ours scores all 7,073 rows
  (43 distinct texts), the pipeline the first ``--rows`` (it does not de-duplicate, so its rate
  does not depend on how many rows it scores).

Each run is a fresh subprocess (own peak RSS; model loading not timed, one warm-up batch not
timed). The machine is shared: the engines run interleaved, ``--repeats`` rounds, and the table
shows each engine's best round by wall time and by process CPU time (user+sys), with the load
average before and after. Agreement columns compare top classes with ours torch fp32 on the same
rows. The ONNX int8 gate (its recheck margin and agreement) is measured on 3,000 DDI-2013
*train* texts and recorded in model.json (see gate_texts).
The table also shows each round's ratio to the pipeline's run of the same round (the ratio's
spread says whether it is stable). ``--threads N`` sets torch's (and so ONNX Runtime's) intra-op
threads in every engine; by default each engine keeps torch's default, one thread per core,
which is what a user of the pipeline gets. Results also go to bench/out/inference.json.
Run: ``.venv/bin/python bench/inference.py`` (about 10 minutes on 2 busy cores).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import OUT, SAMPLE_CSV, SEED_CSV, peak_rss_mib, print_table, timed

MODEL_DIR = OUT / "seed-model"


def engine_dir() -> Path:
    """The folder the engines run: a committee's first member (an ordinary model folder; the
    comparison is about the engine, one model at a time), else the version itself."""
    member = MODEL_DIR / "members" / "0"
    return member if (member / "model.json").is_file() else MODEL_DIR


VARIANTS = ("pipeline", "torch", "torch-bf16", "onnx", "onnx-int8")
KINDS = ("ddi2013", "distinct", "sample")
DDI_CSV = SAMPLE_CSV.parent / "ddi2013_pairs.csv"
REFERENCE = "torch"


def load_texts(kind: str) -> list[str]:
    """Distinct raw descriptions in file order (``distinct``), all 7,073 blinded (``sample``), or
    the DDI-2013 test split's pairs as the app blinds them (``ddi2013``: DRUG_A / DRUG_B /
    DRUG_OTHER, all distinct), in a seeded shuffled order so any prefix is a random sample."""
    from modeling.tables import DESCRIPTION, blinded_text, iter_rows

    if kind == "ddi2013":
        import random

        from modeling.ddi2013 import load_pairs, render

        pairs = [p for p in load_pairs(DDI_CSV) if p.split == "test"]
        texts = list(dict.fromkeys(render(p, "blind").text for p in pairs))
        random.Random(0).shuffle(texts)
        return texts

    rows = list(iter_rows(SAMPLE_CSV))
    if kind == "distinct":
        return list(dict.fromkeys(row[DESCRIPTION] for row in rows))
    return [blinded_text(row) for row in rows]


def build_pipeline(model_dir: Path):
    """A text-classification pipeline over the same merged weights, pooling and temperature."""
    import torch
    from torch import nn
    from transformers import PreTrainedModel, pipeline
    from transformers.modeling_outputs import SequenceClassifierOutput

    from modeling.inference import Predictor

    ours = Predictor.load(model_dir, backend="torch")
    # A committee folder: the naive way is one fine-tuned model, so its first member.
    ours = getattr(ours, "members", [ours])[0]
    config = ours.model.encoder.config
    config.num_labels = len(ours.classes)
    config.id2label = dict(enumerate(ours.classes))
    config.label2id = {name: i for i, name in enumerate(ours.classes)}

    class MeanPoolForSequenceClassification(PreTrainedModel):
        """The Predictor's function as a transformers model, so the pipeline can drive it."""

        config_class = type(config)
        base_model_prefix = "encoder"
        # Attention happens inside the wrapped encoder, which supports SDPA like ours does.
        _supports_sdpa = True

        def __init__(self, cfg, encoder: nn.Module, head: nn.Linear):
            super().__init__(cfg)
            self.encoder = encoder
            self.head = head

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **_):
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return SequenceClassifierOutput(logits=self.head(pooled) / ours.temperature)

    # The very same merged modules (no copy): the pipeline's peak RSS holds one model, like ours.
    model = MeanPoolForSequenceClassification(config, ours.model.encoder, ours.model.head)
    model.eval()
    torch.set_grad_enabled(False)
    return pipeline(
        "text-classification", model=model, tokenizer=ours.tokenizer, device=-1, top_k=None
    ), ours.classes


def texts_for(variant: str, kind: str, rows: int) -> list[str]:
    """The texts one run scores: ours on the real sample takes all 7,073 rows (see module doc)."""
    texts = load_texts(kind)
    return texts if (kind == "sample" and variant != "pipeline") else texts[:rows]


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_variant(variant: str, kind: str, rows: int, threads: int | None = None) -> dict:
    """Score the texts with one engine; wall and CPU seconds, peak RSS and the top classes.

    ``threads``: torch's intra-op threads (ONNX Runtime follows torch's count); None keeps the
    default (one per core), which is what a user of the pipeline gets."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    texts = texts_for(variant, kind, rows)
    started = time.perf_counter()
    if variant == "pipeline":
        classifier, classes = build_pipeline(engine_dir())

        def score(batch: list[str]) -> list[int]:
            outputs = classifier(batch, batch_size=32, truncation=True, max_length=64)
            return [classes.index(max(o, key=lambda d: d["score"])["label"]) for o in outputs]
    else:
        from modeling.inference import Predictor

        predictor = Predictor.load(engine_dir(), backend=variant)
        assert predictor.backend == variant, f"{variant} fell back to {predictor.backend}"

        def score(batch: list[str]) -> list[int]:
            return predictor.predict_batch(batch, batch_size=32).argmax(axis=1).tolist()

    load_seconds = time.perf_counter() - started
    score(texts[-32:])  # warm-up (lazy allocations), not timed
    if variant != "pipeline":
        predictor.rechecked = 0
    cpu_before = cpu_seconds()
    top, seconds = timed(lambda: score(texts))
    cpu = cpu_seconds() - cpu_before
    # The int8 cascade's texts scored again by fp32, as a share of the distinct texts scored.
    rechecked = predictor.rechecked / len(set(texts)) if variant == "onnx-int8" else None
    return {
        "variant": variant,
        "kind": kind,
        "rows": len(texts),
        "distinct": len(set(texts)),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "load_seconds": load_seconds,
        "peak_rss_mib": peak_rss_mib(),
        "threads": torch.get_num_threads(),
        "rechecked_share": rechecked,
        "top": top,
    }


def _run_self(arguments: list[str]) -> str:
    """The last stdout line of this script run with ``arguments`` in a fresh interpreter."""
    output = subprocess.run(
        [sys.executable, __file__, *arguments], check=True, capture_output=True, text=True
    ).stdout
    return output.strip().splitlines()[-1]


def in_subprocess(variant: str, kind: str, rows: int, threads: int | None = None) -> dict:
    """run_variant in a fresh interpreter (own peak RSS)."""
    extra = ["--threads", str(threads)] if threads else []
    return json.loads(
        _run_self(["--variant", variant, "--kind", kind, "--rows", str(rows), *extra])
    )


def ensure_model() -> None:
    """Train the default seed model if bench/train.py has not left one."""
    if (MODEL_DIR / "model.json").is_file():
        return
    from modeling.config import TrainConfig
    from modeling.tables import read_labelled
    from modeling.training import TrainExample, train

    rows = read_labelled(SEED_CSV)
    train(
        [TrainExample(r.text, r.label) for r in rows],
        classes=sorted({r.label for r in rows}),
        config=TrainConfig(),
        out_dir=MODEL_DIR,
    )


def best_of(runs: list[dict]) -> dict:
    """One engine's summary over rounds: best wall time, best CPU time, highest peak RSS."""
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best["cpu_seconds"] = min(r["cpu_seconds"] for r in runs)
    best["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
    best["all_seconds"] = [round(r["seconds"], 2) for r in runs]
    return best


def round_ratios(runs: list[dict], base_runs: list[dict]) -> dict:
    """Rows/s and rows/CPU-s of each round over the pipeline's in the same round."""

    def ratio(r, b, key):
        return (r["rows"] / r[key]) / (b["rows"] / b[key])

    pairs = list(zip(runs, base_runs, strict=True))
    return {
        "wall": [ratio(r, b, "seconds") for r, b in pairs],
        "cpu": [ratio(r, b, "cpu_seconds") for r, b in pairs],
    }


def agreement(a: list[int], b: list[int]) -> float:
    """Share of equal top classes over the rows both scored (the first min(len) rows)."""
    n = min(len(a), len(b))
    return sum(x == y for x, y in zip(a[:n], b[:n], strict=True)) / n


GATE_TEXTS = 3000


def gate_texts() -> list[str]:
    """What the int8 gate is measured on: 3,000 distinct DDI-2013 *train* pairs blinded the app's
    way. Free text, because that is where int8 flips top classes (on the blinded sample's 43
    distinct texts it agrees everywhere, and 7,073 easy rows would swamp the margin's choice);
    never the test pairs the engines are timed and compared on, so the test split's agreement
    column is held-out evidence."""
    import random

    from modeling.ddi2013 import load_pairs, render

    pairs = [p for p in load_pairs(DDI_CSV) if p.split == "train"]
    train = list(dict.fromkeys(render(p, "blind").text for p in pairs))
    random.Random(0).shuffle(train)
    return train[:GATE_TEXTS]


def measure_gate() -> dict:
    """The ONNX int8 cascade's gate (recheck margin, agreement with torch fp32), recorded in
    model.json, measured on gate_texts()."""
    from modeling.export import measure_onnx_int8_agreement

    return measure_onnx_int8_agreement(engine_dir(), gate_texts())


def main() -> None:
    """Measure the int8 gates, run every engine interleaved on both inputs, print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--kind", choices=KINDS)
    parser.add_argument("--kinds", default=",".join(KINDS), help="inputs to run, comma-separated")
    parser.add_argument("--variants", default=None, help="engines, comma-separated (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch/ORT threads per engine")
    parser.add_argument("--out", type=Path, default=OUT / "inference.json")
    parser.add_argument("--rows", type=int, default=384, help="rows for rates without dedup")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds per engine")
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.kind, args.rows, args.threads)))
        return
    if args.prepare:
        from modeling.devices import native_bf16

        ensure_model()
        print(json.dumps({"gate": measure_gate(), "native_bf16": native_bf16("cpu")}))
        return
    kinds = [k for k in args.kinds.split(",") if k]
    variants = [v for v in (args.variants or ",".join(VARIANTS)).split(",") if v]
    if "pipeline" not in variants or REFERENCE not in variants:
        parser.error(f"--variants needs pipeline and {REFERENCE} (the baseline and the reference)")
    load_before = os.getloadavg()
    # In a child too: Linux children inherit the parent's peak RSS (ru_maxrss survives fork and
    # exec), so this process must never load a model (nor torch) or every engine would show it.
    prepared = json.loads(_run_self(["--prepare"]))
    onnx_gate = prepared["gate"]
    if "torch-bf16" in variants and not prepared["native_bf16"]:
        if args.variants:
            parser.error("torch-bf16: this CPU has no native bf16 (it would run fp32)")
        variants.remove("torch-bf16")
        print("torch-bf16 left out: this CPU has no native bf16 (AVX512-BF16/AMX)")
    runs: dict[tuple[str, str], list[dict]] = {}
    for kind in kinds:
        for round_ in range(args.repeats):
            # Rotate the order each round so no engine always runs right after a heavy one.
            order = variants[round_ % len(variants) :] + variants[: round_ % len(variants)]
            for variant in order:
                run = in_subprocess(variant, kind, args.rows, args.threads)
                runs.setdefault((variant, kind), []).append(run)
                print(
                    f"  {kind} round {round_ + 1} {variant} {run['rows'] / run['seconds']:.0f} "
                    f"rows/s, {run['rows'] / run['cpu_seconds']:.0f} rows/CPU-s",
                    file=sys.stderr,
                )
    load_after = os.getloadavg()
    results = {key: best_of(value) for key, value in runs.items()}
    table = []
    for kind in kinds:
        base = results[("pipeline", kind)]
        reference = results[(REFERENCE, kind)]
        base_wall = base["rows"] / base["seconds"]
        base_cpu = base["rows"] / base["cpu_seconds"]
        for variant in variants:
            r = results[(variant, kind)]
            wall_rate = r["rows"] / r["seconds"]
            cpu_rate = r["rows"] / r["cpu_seconds"]
            per_round = round_ratios(runs[(variant, kind)], runs[("pipeline", kind)])
            r["round_ratios"] = per_round
            table.append(
                [
                    kind,
                    f"{r['rows']}/{r['distinct']}",
                    variant,
                    " ".join(str(x) for x in r["all_seconds"]),
                    f"{wall_rate:.0f}",
                    f"{wall_rate / base_wall:.1f}x",
                    " ".join(f"{x:.1f}" for x in per_round["wall"]),
                    f"{r['cpu_seconds']:.2f}",
                    f"{cpu_rate:.0f}",
                    f"{cpu_rate / base_cpu:.1f}x",
                    " ".join(f"{x:.1f}" for x in per_round["cpu"]),
                    f"{r['load_seconds']:.1f}",
                    f"{r['peak_rss_mib']:.0f}",
                    f"{agreement(r['top'], reference['top']):.4f}",
                    f"{agreement(r['top'], base['top']):.4f}",
                ]
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "load_before": load_before,
                "load_after": load_after,
                "threads": args.threads,
                "results": {f"{v}/{k}": {**r, "top": None} for (v, k), r in results.items()},
            },
            indent=2,
        )
    )
    print_table(
        [
            "input",
            "rows/distinct",
            "engine",
            "wall s (rounds)",
            "rows/s wall",
            "vs pipeline",
            "per round",
            "CPU s (best)",
            "rows/CPU-s",
            "vs pipeline",
            "per round",
            "load s",
            "peak RSS MiB",
            "top = torch fp32",
            "top = pipeline",
        ],
        table,
    )
    print(
        f"\nload average (1/5/15 min) before {load_before[0]:.1f}/{load_before[1]:.1f}/"
        f"{load_before[2]:.1f}, after {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f}"
        f" on {os.cpu_count()} CPUs"
    )
    gate = onnx_gate
    print(
        f"ONNX int8 gate ({GATE_TEXTS} distinct DDI-2013 train texts, recorded in "
        f"model.json): recheck margin {gate['recheck_margin']} chosen on one half "
        f"({gate['choose_agreement']:.4f}), cascade agreement {gate['agreement']:.4f} on the "
        f"other half, int8 alone {gate['plain_agreement']:.4f}, rechecked "
        f"{gate['rechecked_share']:.1%} of {gate['n_texts']} rows, usable={gate['usable']}"
    )
    for kind in kinds:
        share = results.get(("onnx-int8", kind), {}).get("rechecked_share")
        if share is not None:
            print(f"ONNX int8 cascade on {kind}: {share:.1%} of the distinct texts rechecked")
    print("targets: ours >= 3x pipeline on distinct texts, >= 50x on the sample; int8 >= 99.5%")


if __name__ == "__main__":
    main()
