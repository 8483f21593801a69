"""Benchmark: the DDI Extraction 2013 corpus through our pipeline, scored the shared-task way.

One run does, in a throw-away SQLite database:
1. import ``ddi2013_pairs.csv`` with the ``ddi2013`` column mapping (offset blinding, DRUG_OTHER,
   train labels as seed labels, test labels held out);
2. train a model version on the train split labels: the default backbone and the TrainConfig
   defaults (LoRA r=8, alpha=16, lr 1e-3, batch 16, 12 epochs with early stopping, class
   weighting, 20% validation) except ``max_length`` (default 128: covers 99% of the corpus's
   sentences; the DrugBank default of 64 would cut a quarter of them) and what the flags change;
3. score the whole test split with our Predictor: micro P/R/F1 over mechanism/effect/advise/int
   (negatives excluded) + per-class scores, i.e. the DDI-2013 shared-task measure;
4. inference speed on this free text (no duplicate texts to skip) of our Predictor next to
   transformers ``pipeline("text-classification")`` at batch size 32 over the same weights.

On 2 shared CPU cores the full corpus with 12 epochs does not fit a ~20-minute budget, so
``--max-train N`` trains on N train pairs: a seeded sample of the positive pairs (up to N/2)
plus seeded negatives for the rest, a common DDI practice (negative down-sampling), and
``--max-test N`` scores a seeded sample of the test split (default: all 5,716 pairs). The
printed header says exactly what ran; the JSON lands in bench/out/ddi2013.json.

    .venv/bin/python bench/ddi2013.py [--max-train 4000] [--epochs 1] [--max-length 128]
        [--max-test 1000] [--speed-rows 1000] [--backbone all-minilm-l6-v2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _measure import DATA, OUT, peak_rss_mib, print_table, timed  # noqa: E402

CORPUS = DATA / "ddi2013_pairs.csv"
# Published anchors (test set, micro-F1 over the four positive classes).
ANCHORS = [
    ("FBK-irst (best system of the 2013 shared task)", "0.651"),
    ("BioBERT / PubMedBERT-class fine-tuning (full-size biomedical backbone)", "~0.80-0.84"),
]


def setup_django(workdir: Path) -> None:
    """A fresh SQLite database and artifact folder under `workdir`, migrated."""
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ["DDI_ARTIFACTS_DIR"] = str(workdir / "models")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ddi_site.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def import_corpus():
    """The ddi2013 import into a five-class project; returns (project, seconds, notes)."""
    from annotations.models import Project
    from annotations.services.import_formats import DDI2013, DDI2013_CLASSES
    from annotations.services.importing import import_interactions

    project = Project.objects.create(name="DDI 2013", label_classes=list(DDI2013_CLASSES))
    outcome, seconds = timed(
        lambda: import_interactions(project=project, path=CORPUS, mapping=DDI2013)
    )
    return project, seconds, outcome.notes


def training_sample(examples: list, max_train: int | None, positives: list[str], seed: int):
    """All examples, or max_train of them: positives first (up to half), negatives fill up."""
    if max_train is None or max_train >= len(examples):
        return list(examples)
    rng = random.Random(seed)
    pos = [e for e in examples if e.label in positives]
    neg = [e for e in examples if e.label not in positives]
    take_pos = min(len(pos), max_train // 2)
    chosen = rng.sample(pos, take_pos) + rng.sample(neg, min(len(neg), max_train - take_pos))
    rng.shuffle(chosen)
    return chosen


def test_split(project) -> tuple[list[str], list[str]]:
    """Blinded texts and reference classes of the test split, in id order."""
    from annotations.models import Interaction

    rows = (
        Interaction.objects.filter(project=project, split="test")
        .order_by("pk")
        .values_list("blinded_text", "extra__reference_label")
    )
    texts, labels = zip(*rows, strict=True)
    return list(texts), list(labels)


def pipeline_rate(model_dir: Path, texts: list[str], max_length: int, classes: list[str]):
    """rows/s and top classes of transformers' pipeline at batch size 32 on the same weights."""
    from inference import build_pipeline  # bench/inference.py: the same wrapper as that bench
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the wrapper model is "not supported": it works anyway
    classifier, _ = build_pipeline(model_dir)
    classifier(texts[:32], batch_size=32, truncation=True, max_length=max_length)  # warm-up
    outputs, seconds = timed(
        lambda: classifier(texts, batch_size=32, truncation=True, max_length=max_length)
    )
    top = [max(o, key=lambda d: d["score"])["label"] for o in outputs]
    return len(texts) / seconds, top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-train", type=int, default=None, help="train pairs (default: all)")
    parser.add_argument("--epochs", type=int, default=None, help="default: TrainConfig's")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--backbone", default=None, help="default: DDI_BACKBONE or the bundled")
    parser.add_argument(
        "--max-test", type=int, default=None, help="score a seeded sample (default: all 5,716)"
    )
    parser.add_argument("--speed-rows", type=int, default=1000, help="test rows for the speed race")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ddi2013-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    setup_django(workdir)

    import torch
    from django.conf import settings

    from annotations.services.import_formats import DDI2013_POSITIVE_CLASSES
    from annotations.services.training import gather_training_examples
    from modeling.config import TrainConfig
    from modeling.ddi2013_scoring import micro_prf
    from modeling.inference import Predictor
    from modeling.training import train

    project, import_s, notes = import_corpus()
    print(f"imported {CORPUS.name} in {import_s:.1f}s ({len(notes)} notes)", file=sys.stderr)
    classes = list(project.label_classes)
    every = gather_training_examples(project=project).examples
    config_values = {
        "max_length": args.max_length,
        "backbone": args.backbone or settings.DDI_BACKBONE,
    }
    if args.epochs is not None:
        config_values["epochs"] = args.epochs
    config = TrainConfig(**config_values)
    examples = training_sample(every, args.max_train, DDI2013_POSITIVE_CLASSES, config.seed)
    model_dir = workdir / "models" / "ddi2013"
    last = [0.0]

    def progress(p) -> None:
        if time.monotonic() - last[0] > 30 or p.step == p.total_steps:
            last[0] = time.monotonic()
            print(
                f"  epoch {p.epoch} step {p.step}/{p.total_steps} loss {p.loss:.3f}",
                file=sys.stderr,
            )

    print(f"training on {len(examples)} of {len(every)} train pairs ...", file=sys.stderr)
    result, train_s = timed(
        lambda: train(
            examples, classes=classes, config=config, out_dir=model_dir, on_progress=progress
        )
    )
    texts, truth = test_split(project)
    if args.max_test is not None and args.max_test < len(texts):
        keep = sorted(random.Random(config.seed).sample(range(len(texts)), args.max_test))
        texts, truth = [texts[i] for i in keep], [truth[i] for i in keep]
    predictor = Predictor.load(model_dir)
    probs, ours_s = timed(lambda: predictor.predict_batch(texts))
    predicted = [classes[k] for k in probs.argmax(axis=1)]
    scores = micro_prf(truth, predicted, positive_classes=DDI2013_POSITIVE_CLASSES)

    race = texts[: args.speed_rows]
    _, ours_race_s = timed(lambda: predictor.predict_batch(race))
    pipe_rate, pipe_top = pipeline_rate(model_dir, race, args.max_length, classes)
    agreement = sum(a == b for a, b in zip(predicted, pipe_top, strict=False)) / len(race)

    counts = {c: sum(e.label == c for e in examples) for c in classes}
    report = {
        "threads": torch.get_num_threads(),
        "backbone": config.backbone,
        "config": config.to_dict(),
        "train_pairs": len(examples),
        "train_pairs_available": len(every),
        "train_class_counts": counts,
        "epochs_run": result.metrics["epochs_run"],
        "train_seconds": train_s,
        "import_seconds": import_s,
        "test_pairs": len(texts),
        "test_distinct_texts": len(set(texts)),
        "scores": scores,
        "ours_rows_per_s_full_test": len(texts) / ours_s,
        "ours_rows_per_s_race": len(race) / ours_race_s,
        "pipeline_rows_per_s_race": pipe_rate,
        "race_rows": len(race),
        "pipeline_top1_agreement": agreement,
        "peak_rss_mib": peak_rss_mib(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ddi2013.json").write_text(json.dumps(report, indent=2))

    print(
        f"\nDDI-2013 test split ({len(texts)} of 5,716 pairs), backbone {config.backbone}, "
        f"{len(examples)}/{len(every)} train pairs {counts}, epochs {config.epochs} "
        f"(ran {report['epochs_run']}), max_length {config.max_length}, "
        f"LoRA r={config.lora_r} alpha={config.lora_alpha}, lr {config.learning_rate}, "
        f"batch {config.batch_size}, {torch.get_num_threads()} threads\n"
    )
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
    speed = [
        ["import (33,508 pairs)", f"{import_s:.1f} s"],
        ["training", f"{train_s:.1f} s"],
        ["ours, Predictor, full test split", f"{report['ours_rows_per_s_full_test']:.1f} rows/s"],
        [
            f"ours, Predictor, first {len(race)} rows",
            f"{report['ours_rows_per_s_race']:.1f} rows/s",
        ],
        [f"pipeline, batch 32, same {len(race)} rows", f"{pipe_rate:.1f} rows/s"],
        ["speed-up vs pipeline", f"{report['ours_rows_per_s_race'] / pipe_rate:.1f}x"],
        ["top-1 agreement with pipeline", f"{agreement:.4f}"],
        ["peak RSS", f"{report['peak_rss_mib']:.0f} MiB"],
    ]
    print_table(["what", "value"], speed)
    print()
    print_table(
        ["published anchor", "micro-F1"],
        [*ANCHORS, [f"ours ({config.backbone}, this run)", f"{micro['f1']:.3f}"]],
    )


if __name__ == "__main__":
    main()
