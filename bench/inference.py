"""Benchmark: transformers pipeline("text-classification") at batch size 32 vs our Predictor.

Both score the same model version (bench/out/seed-model, trained by bench/train.py with the
defaults; trained here first if missing). The baseline wraps exactly the same merged weights,
mean pooling and temperature in a transformers PreTrainedModel, so the pipeline computes the same
probabilities: the comparison is about the inference engine, not the model.

Two inputs, all 7,073 rows of the DrugBank sample each:
- ``distinct``: the raw, un-blinded descriptions (drug names make almost every text distinct, so
  de-duplication barely helps; measures batching, padding, merged LoRA and no-grad);
- ``sample``: the blinded descriptions as the app scores them (43 distinct texts).

Each variant runs in its own subprocess so that its peak RSS is its own.
Run: ``.venv/bin/python bench/inference.py`` (about 2-4 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import OUT, SAMPLE_CSV, SEED_CSV, peak_rss_mib, print_table, timed

MODEL_DIR = OUT / "seed-model"
VARIANTS = ("pipeline", "ours", "ours-int8")


def load_texts(kind: str) -> list[str]:
    """The 7,073 sample descriptions, raw (``distinct``) or blinded (``sample``)."""
    from modeling.tables import DESCRIPTION, blinded_text, iter_rows

    rows = list(iter_rows(SAMPLE_CSV))
    return (
        [row[DESCRIPTION] for row in rows]
        if kind == "distinct"
        else [blinded_text(row) for row in rows]
    )


def build_pipeline(model_dir: Path):
    """A text-classification pipeline over the same merged weights, pooling and temperature."""
    import torch
    from torch import nn
    from transformers import AutoModel, PreTrainedModel, pipeline
    from transformers.modeling_outputs import SequenceClassifierOutput

    from modeling.inference import Predictor

    ours = Predictor.load(model_dir)
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

        def __init__(self, cfg):
            super().__init__(cfg)
            self.encoder = AutoModel.from_config(cfg)
            self.head = nn.Linear(cfg.hidden_size, cfg.num_labels)

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **_):
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return SequenceClassifierOutput(logits=self.head(pooled) / ours.temperature)

    model = MeanPoolForSequenceClassification(config)
    model.encoder.load_state_dict(ours.model.encoder.state_dict(), strict=False)
    model.head.load_state_dict(ours.model.head.state_dict())
    model.eval()
    torch.set_grad_enabled(False)
    return pipeline(
        "text-classification", model=model, tokenizer=ours.tokenizer, device=-1, top_k=None
    ), ours.classes


def texts_for(variant: str, kind: str, rows: int) -> list[str]:
    """The texts one run scores.

    Rates without de-duplication do not depend on how many rows are scored, so the distinct
    input and the pipeline use the first ``rows`` rows to keep the run short on 2 busy cores;
    our engine on the real sample always scores all 7,073 rows, since its gain depends on them.
    """
    texts = load_texts(kind)
    return texts if (kind == "sample" and variant != "pipeline") else texts[:rows]


def run_variant(variant: str, kind: str, rows: int) -> dict:
    """Score the texts with one engine; returns rows/s, peak RSS and the top classes."""
    texts = texts_for(variant, kind, rows)
    if variant == "pipeline":
        classifier, classes = build_pipeline(MODEL_DIR)
        outputs, seconds = timed(
            lambda: classifier(texts, batch_size=32, truncation=True, max_length=64)
        )
        top = [classes.index(max(o, key=lambda d: d["score"])["label"]) for o in outputs]
    else:
        from modeling.inference import Predictor

        predictor = Predictor.load(MODEL_DIR, quantize=variant == "ours-int8")
        probs, seconds = timed(lambda: predictor.predict_batch(texts))
        top = probs.argmax(axis=1).tolist()
    return {
        "variant": variant,
        "kind": kind,
        "rows": len(texts),
        "distinct": len(set(texts)),
        "seconds": seconds,
        "rows_per_s": len(texts) / seconds,
        "peak_rss_mib": peak_rss_mib(),
        "top": top,
    }


def in_subprocess(variant: str, kind: str, rows: int) -> dict:
    """run_variant in a fresh interpreter (own peak RSS)."""
    output = subprocess.run(
        [sys.executable, __file__, "--variant", variant, "--kind", kind, "--rows", str(rows)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


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


def main() -> None:
    """Verify int8, run every variant on both inputs, print a side-by-side table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--kind", choices=("distinct", "sample"))
    parser.add_argument("--rows", type=int, default=1500, help="rows for rates without dedup")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.kind, args.rows)))
        return
    ensure_model()
    from modeling.quantization import measure_int8_agreement

    # Recorded in model.json: the gate Predictor.load(quantize=True) checks.
    gate = measure_int8_agreement(MODEL_DIR, load_texts("sample"))
    results = {
        (v, k): in_subprocess(v, k, args.rows) for k in ("distinct", "sample") for v in VARIANTS
    }
    table = []
    for kind in ("distinct", "sample"):
        base = results[("pipeline", kind)]
        for variant in VARIANTS:
            r = results[(variant, kind)]
            n = min(len(r["top"]), len(base["top"]))
            agree = sum(a == b for a, b in zip(r["top"][:n], base["top"][:n], strict=True)) / n
            table.append(
                [
                    kind,
                    f"{r['rows']}/{r['distinct']}",
                    variant,
                    f"{r['seconds']:.2f}",
                    f"{r['rows_per_s']:.0f}",
                    f"{r['rows_per_s'] / base['rows_per_s']:.1f}x",
                    f"{r['peak_rss_mib']:.0f}",
                    f"{agree:.4f}",
                ]
            )
    print_table(
        [
            "input",
            "rows/distinct",
            "engine",
            "seconds",
            "rows/s",
            "vs pipeline",
            "peak RSS MiB",
            "same top class as pipeline",
        ],
        table,
    )
    print(
        f"\nint8 gate (blinded sample, recorded in model.json): agreement "
        f"{gate['agreement']:.4f} on {gate['n_texts']} rows, max |dp| "
        f"{gate['max_abs_prob_diff']:.4f}, usable={gate['usable']}"
    )
    print("targets: ours >= 3x pipeline on distinct texts, >= 50x on the sample; int8 >= 99.5%")


if __name__ == "__main__":
    main()
