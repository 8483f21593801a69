"""The one bridge between annotations and modeling: no other module of annotations imports
modeling (import-linter contract "one-ml-bridge" in pyproject.toml).

It hands modeling plain data and takes plain data back: blinding, training configs and examples,
training itself, the Predictor cache (one loaded model per worker process), fingerprints,
out-of-fold answers and metrics. torch and transformers load only in processes that train or
predict, so every import of a module that pulls them in stays inside a function here; the
blinding, config and scoring modules are pure Python and imported at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from modeling.blinding import Span, blind, blind_spans, mentions
from modeling.config import TrainConfig
from modeling.ddi2013_scoring import micro_prf
from modeling.offsets import Mention, OffsetProblem, blind_pair, locate_mention

if TYPE_CHECKING:
    from annotations.models import ModelVersion
    from modeling.inference import Predictor
    from modeling.training import TrainExample, TrainResult

__all__ = [
    "Mention",
    "OffsetProblem",
    "Span",
    "TrainConfig",
    "blind",
    "blind_pair",
    "blind_spans",
    "classification_metrics",
    "data_fingerprint",
    "export_for_serving",
    "forget_predictors",
    "get_predictor",
    "locate_mention",
    "make_train_example",
    "mentions",
    "micro_prf",
    "preload",
    "read_out_of_fold",
    "text_key",
    "train",
    "why_unsure",
]

logger = logging.getLogger(__name__)

# One loaded model per worker process; a couple of versions at most (memory stays bounded).
_PREDICTORS: dict[tuple[int, str], Predictor] = {}
_MAX_CACHED_PREDICTORS = 2


def preload() -> None:
    """Import torch/transformers now (a worker's main process, before its pool forks)."""
    import modeling.inference  # noqa: F401


def get_predictor(model_version: ModelVersion) -> Predictor:
    """The Predictor of a model version, loaded once per worker process."""
    # The folder is part of the key: ids can be reused (SQLite, test databases).
    key = (model_version.pk, model_version.artifact_path)
    predictor = _PREDICTORS.get(key)
    if predictor is None:
        from modeling.inference import Predictor  # torch loads only in processes that predict

        predictor = Predictor.load(
            Path(model_version.artifact_path),
            backend=settings.DDI_INFERENCE_BACKEND,
            device=settings.DDI_DEVICE,
        )
        while len(_PREDICTORS) >= _MAX_CACHED_PREDICTORS:
            _PREDICTORS.pop(next(iter(_PREDICTORS)))
        _PREDICTORS[key] = predictor
    return predictor


def forget_predictors(folder: Path) -> None:
    """Drop cached Predictors loaded from under ``folder`` (e.g. a deleted scratch folder)."""
    for key in [k for k in _PREDICTORS if str(k[1]).startswith(str(folder))]:
        _PREDICTORS.pop(key, None)


def make_train_example(*, text: str, label: str) -> TrainExample:
    """One (blinded text, class) training example."""
    from modeling.training import TrainExample

    return TrainExample(text=text, label=label)


def train(
    examples, *, gate_texts: Callable[[], list[str]] | None = None, **kwargs: Any
) -> TrainResult:
    """modeling.training.train (writes the artifact folder; see its docstring), then, when the
    app serves with an ONNX backend, the offline ONNX export of the new version (inference
    never exports; an export that fails leaves the version served by torch, with a warning).
    With ``onnx-int8`` the int8 gate is measured too, on the texts ``gate_texts()`` returns."""
    from modeling.training import train as train_model

    result = train_model(examples, **kwargs)
    if settings.DDI_INFERENCE_BACKEND.startswith("onnx"):
        texts = None
        if settings.DDI_INFERENCE_BACKEND == "onnx-int8" and gate_texts is not None:
            texts = gate_texts()
        export_for_serving(result.artifact_dir, gate_texts=texts)
    return result


def export_for_serving(model_dir: Path, *, gate_texts: list[str] | None = None) -> None:
    """The ONNX files of a model version folder (modeling.export) and, given ``gate_texts``, the
    int8 gate measured on them; or a logged warning (the version is then served by ONNX fp32 or
    torch, as Predictor.load decides)."""
    from modeling.export import export_onnx, measure_onnx_int8_agreement
    from modeling.onnx_runtime import OnnxNotAvailable

    try:
        export_onnx(Path(model_dir))
        if gate_texts:
            measure_onnx_int8_agreement(Path(model_dir), gate_texts)
    except (OnnxNotAvailable, OSError) as error:
        logger.warning(
            "%s: ONNX export failed (%s); the version is served by torch", model_dir, error
        )


def data_fingerprint(pairs: Iterable[tuple[str, str]]) -> str:
    """The fingerprint of the (text, label) pairs a version trained on."""
    from modeling.artifacts import data_fingerprint as fingerprint

    return fingerprint(pairs)


def read_out_of_fold(model_dir: Path) -> dict:
    """A version's out-of-fold answers, by text key (modeling.artifacts.read_out_of_fold)."""
    from modeling.artifacts import read_out_of_fold as read

    return read(model_dir)


def classification_metrics(*args: Any, **kwargs: Any) -> dict:
    """modeling.metrics.classification_metrics (accuracy, macro-F1, per class, confusion)."""
    from modeling.metrics import classification_metrics as metrics

    return metrics(*args, **kwargs)


def text_key(text: str) -> str:
    """The key modeling stores per-text answers under (modeling.uncertainty.text_key)."""
    from modeling.uncertainty import text_key as key

    return key(text)


def why_unsure(*args: Any, **kwargs: Any) -> list[str]:
    """The reasons in words a prediction is unsure (modeling.uncertainty.reasons)."""
    from modeling.reasons import reasons

    return reasons(*args, **kwargs)


def evidence_signals(*args: Any, **kwargs: Any) -> dict:
    """A row's labelled-mirror and mixed-directions signals (modeling.mirror.evidence_signals)."""
    from modeling.mirror import evidence_signals as signals

    return signals(*args, **kwargs)
