"""Command line: ``python -m modeling train|predict|evaluate|export-onnx``.

Expected errors (bad file, missing column, unknown backbone, broken model folder) print one line
to stderr and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields
from itertools import islice, tee
from pathlib import Path

import numpy as np
from tqdm import tqdm

from modeling.artifacts import ArtifactError
from modeling.backbones import BackboneNotAvailable
from modeling.backends import BACKENDS, REMOVED_BACKENDS
from modeling.checkpoints import CheckpointMismatch
from modeling.config import TrainConfig
from modeling.onnx_runtime import OnnxNotAvailable
from modeling.tables import (
    InputFileError,
    SkippedRow,
    blinded_text,
    iter_rows,
    read_labelled,
)

EXIT_USAGE = 2
_EXPECTED_ERRORS = (
    InputFileError,
    ArtifactError,
    BackboneNotAvailable,
    CheckpointMismatch,
    OnnxNotAvailable,
)


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field, defaulting to None so unset options keep the defaults."""
    for item in fields(TrainConfig):
        flag = "--" + item.name.replace("_", "-")
        default = getattr(TrainConfig(), item.name)
        if item.name == "target_modules":
            parser.add_argument(flag, help=f"comma-separated (default {','.join(default)})")
        elif isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = type(default)
            parser.add_argument(flag, type=kind, help=f"default {default}")


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig with the options the user set; the rest keep their defaults."""
    values = {}
    for item in fields(TrainConfig):
        value = getattr(args, item.name)
        if value is None:
            continue
        if item.name == "target_modules":
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        values[item.name] = value
    return TrainConfig(**values)


def _add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default=os.environ.get("DDI_DEVICE", "auto"),
        help="auto (a CUDA GPU when present, else the CPU), cpu, cuda, cuda:N or mps "
        "(default: $DDI_DEVICE, else auto)",
    )


# Options measured worse and removed: a clear message instead of "unrecognized arguments".
_REMOVED_INT8 = (
    "torch int8 was removed (measured slower than torch fp32 and less accurate, README "
    "'Inference'); use --backend onnx-int8 where its gate passed (export-onnx --input CSV)"
)


class _Removed(argparse.Action):
    """A removed option: using it is a usage error that says what to use instead."""

    def __init__(self, option_strings, dest, message: str = "", **kwargs):
        super().__init__(option_strings, dest, nargs=0, help=argparse.SUPPRESS, **kwargs)
        self.message = message

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string}: {self.message}")


def _backend_name(value: str) -> str:
    """--backend's type: a removed backend says why and what to use instead."""
    if value in REMOVED_BACKENDS:
        raise argparse.ArgumentTypeError(REMOVED_BACKENDS[value])
    return value


def _build_parser() -> argparse.ArgumentParser:
    """The argparse tree of all sub-commands."""
    parser = argparse.ArgumentParser(prog="python -m modeling", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="fine-tune a model version on a labelled CSV")
    train.add_argument("--labels", type=Path, required=True, help="CSV with Drug 1, Drug 2, ...")
    train.add_argument("--out", type=Path, required=True, help="model version folder to write")
    train.add_argument("--classes", help="comma-separated class order (default: sorted labels)")
    train.add_argument("--checkpoint-dir", type=Path, help="resumable checkpoint folder")
    _add_device_option(train)
    _add_config_options(train)
    predict = commands.add_parser("predict", help="add predictions to an interaction CSV")
    predict.add_argument("--model", type=Path, required=True)
    predict.add_argument("--input", type=Path, required=True)
    predict.add_argument("--output", type=Path, required=True)
    predict.add_argument("--batch-size", type=int, default=64)
    predict.add_argument("--int8", action=_Removed, message=_REMOVED_INT8)
    predict.add_argument(
        "--backend",
        type=_backend_name,
        choices=BACKENDS,
        default=os.environ.get("DDI_INFERENCE_BACKEND") or None,
        help="inference engine (default: $DDI_INFERENCE_BACKEND, else torch)",
    )
    _add_device_option(predict)
    evaluate = commands.add_parser("evaluate", help="metrics of a model on a labelled CSV")
    evaluate.add_argument("--model", type=Path, required=True)
    evaluate.add_argument("--labels", type=Path, required=True)
    _add_device_option(evaluate)
    removed = commands.add_parser("verify-int8", help="removed: use export-onnx --input")
    removed.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    removed.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    export = commands.add_parser(
        "export-onnx", help="export ONNX fp32+int8 into the model folder; measure int8 agreement"
    )
    export.add_argument("--model", type=Path, required=True)
    export.add_argument(
        "--input", type=Path, help="interaction CSV to measure and record ONNX int8 agreement on"
    )
    return parser


def run_train(args: argparse.Namespace) -> int:
    """Train from a labelled CSV with a tqdm bar; prints the metrics JSON."""
    from modeling.training import TrainExample, train

    config = _config_from_args(args)
    rows = read_labelled(args.labels)
    if not rows:
        raise InputFileError(f"{args.labels}: no rows")
    if args.classes:
        classes = [part.strip() for part in args.classes.split(",") if part.strip()]
    else:
        classes = sorted({row.label for row in rows})
    unknown = sorted({row.label for row in rows} - set(classes))
    if unknown:
        raise InputFileError(f"{args.labels}: labels {unknown} are not in --classes {classes}")
    if len(classes) < 2:
        raise InputFileError(f"{args.labels}: needs at least 2 distinct labels, found {classes}")
    examples = [TrainExample(row.text, row.label) for row in rows]
    with tqdm(desc="training", unit="step", file=sys.stderr) as bar:

        def on_progress(progress) -> None:
            bar.total = progress.total_steps
            bar.set_postfix(epoch=progress.epoch, loss=f"{progress.loss:.4f}")
            bar.update(progress.step - bar.n)

        result = train(
            examples,
            classes=classes,
            config=config,
            out_dir=args.out,
            on_progress=on_progress,
            checkpoint_dir=args.checkpoint_dir,
            device=args.device,
        )
    print(json.dumps(result.metrics, indent=2))
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """Stream an interaction CSV through the model into an output CSV with probabilities."""
    from modeling.inference import Predictor

    predictor = Predictor.load(args.model, backend=args.backend, device=args.device)
    # tee buffers at most one inference window of rows between the two consumers. Rows that
    # cannot be used are listed and skipped: one bad row must not cost the other 192,283.
    skipped: list[SkippedRow] = []
    rows_for_text, rows_for_output = tee(iter_rows(args.input, skipped=skipped))
    with args.input.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle))
    out_columns = [*header, "predicted_label", "confidence", "uncertainty", "why_unsure"]
    out_columns += [f"p_{name}" for name in predictor.classes]
    texts = (blinded_text(row) for row in rows_for_text)
    scored = iter_scores(predictor, texts, batch_size=args.batch_size)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed at the end: a failed run leaves no partial output.
    partial = args.output.with_name(args.output.name + ".partial")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(out_columns)
        for row, (probs, confidence, why) in tqdm(
            zip(rows_for_output, scored, strict=True),
            desc="predicting",
            unit="row",
            file=sys.stderr,
        ):
            top = int(np.argmax(probs))
            writer.writerow(
                [row.get(column, "") for column in header]
                + [predictor.classes[top], f"{confidence:.6f}", f"{1.0 - confidence:.6f}", why]
                + [f"{value:.6f}" for value in probs]
            )
    os.replace(partial, args.output)
    _report_skipped(skipped, args.output)
    return 0


def iter_scores(predictor, texts: Iterable[str], *, batch_size: int) -> Iterator[tuple]:
    """(probabilities, calibrated confidence, why unsure in words) per text, window by window."""
    from modeling.inference import WINDOW_SIZE
    from modeling.mirror import evidence_signals
    from modeling.reasons import reasons

    iterator = iter(texts)
    while window := list(islice(iterator, WINDOW_SIZE)):
        scores = predictor.score(window, batch_size=batch_size)
        for i in range(len(window)):
            evidence = evidence_signals(scores, i, list(predictor.classes))
            why = reasons(
                scores.seen[i],
                scores.novelty[i],
                scores.direction[i],
                scores.agreement[i],
                **evidence,
            )
            yield scores.probabilities[i], float(scores.confidence[i]), "; ".join(why)


def _report_skipped(skipped: list[SkippedRow], output: Path, *, shown: int = 5) -> None:
    """Name the skipped rows on stderr (the first few) and all of them in a CSV beside output."""
    report = output.with_name(output.stem + ".skipped.csv")
    if not skipped:
        report.unlink(missing_ok=True)
        return
    with report.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "problem"])
        writer.writerows((row.line, row.problem) for row in skipped)
    for row in skipped[:shown]:
        print(f"skipped {row.problem}", file=sys.stderr)
    more = f" ({len(skipped) - shown} more)" if len(skipped) > shown else ""
    print(
        f"{len(skipped)} row(s) skipped{more}, the rest predicted; all listed in {report}",
        file=sys.stderr,
    )


def evaluate_texts(predictor, texts: Sequence[str], labels: Sequence[str]) -> dict:
    """Metrics of a predictor on labelled texts (accuracy, macro-F1, per class, matrix, ECE)."""
    from modeling.metrics import (
        classification_metrics,
        confidence_ece,
        expected_calibration_error,
    )

    index = {name: i for i, name in enumerate(predictor.classes)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise InputFileError(f"labels {unknown} are not classes of the model {predictor.classes}")
    y_true = np.asarray([index[label] for label in labels], dtype=np.int64)
    scores = predictor.score(list(texts))
    probs = scores.probabilities
    metrics = classification_metrics(y_true, probs.argmax(axis=1), predictor.classes)
    # ECE of the served (calibrated) confidence, and of the softmax for comparison.
    metrics["ece"] = confidence_ece(scores.confidence, probs.argmax(axis=1) == y_true)
    metrics["ece_softmax"] = expected_calibration_error(probs, y_true)
    metrics["n"] = len(y_true)
    return metrics


def run_evaluate(args: argparse.Namespace) -> int:
    """Print the metrics of a model version on a labelled CSV as JSON."""
    from modeling.inference import Predictor

    predictor = Predictor.load(args.model, device=args.device)
    rows = read_labelled(args.labels)
    metrics = evaluate_texts(predictor, [r.text for r in rows], [r.label for r in rows])
    print(json.dumps(metrics, indent=2))
    return 0


def run_removed_verify_int8(args: argparse.Namespace) -> int:
    """verify-int8 measured the removed torch int8 backend."""
    print(f"error: verify-int8: {_REMOVED_INT8}", file=sys.stderr)
    return EXIT_USAGE


def run_export_onnx(args: argparse.Namespace) -> int:
    """Export the ONNX files; with --input also measure and record the int8 agreement."""
    from modeling.export import export_onnx, measure_onnx_int8_agreement

    report = {"export": export_onnx(args.model)}
    if args.input is not None:
        texts = [blinded_text(row) for row in iter_rows(args.input)]
        report["int8_gate"] = measure_onnx_int8_agreement(args.model, texts)
    print(json.dumps(report, indent=2))
    return 0


_COMMANDS = {
    "train": run_train,
    "predict": run_predict,
    "evaluate": run_evaluate,
    "verify-int8": run_removed_verify_int8,
    "export-onnx": run_export_onnx,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run one command, turn expected errors into a message and exit code 2."""
    args = _build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except _EXPECTED_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as error:
        # TrainConfig and train() raise ValueError for invalid settings or labels.
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
