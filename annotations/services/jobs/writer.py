"""Writing predictions: score values, the score cache, and the COPY / ORM writers."""

from __future__ import annotations

import json
import logging
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import connection, transaction

from annotations.models import Prediction
from annotations.services.ml import evidence_signals, why_unsure

if TYPE_CHECKING:
    from annotations.services.ml import Predictor, Scores

logger = logging.getLogger(__name__)

# Distinct blinded texts whose prediction values a worker keeps per loaded model version.
SCORE_CACHE_ENTRIES = 50_000


@dataclass(frozen=True)
class PredictionValues:
    """The stored values of one distinct text's prediction (shared by its duplicates)."""

    predicted_class: str
    confidence: float
    margin: float
    probabilities: list[float]
    uncertainty: float
    signals: dict
    # "\t<class>\t<confidence>\t<margin>\t<probabilities json>\t<uncertainty>\t<signals>\n"
    copy_suffix: str


class ScoreCache:
    """Bounded LRU of one Predictor's values per blinded text, for one worker process.

    DrugBank descriptions repeat a few hundred blinded patterns (the 1M-row synthetic table has
    86), so after the first batch almost every text is a hit and inference costs nothing. The
    values (class, confidence, margin, JSON, COPY text) are computed once per distinct text.
    Bounded by SCORE_CACHE_ENTRIES (a few hundred bytes each: ~20 MB at most), so memory does
    not grow with the table.
    """

    def __init__(self, predictor: Predictor, max_entries: int):
        self.predictor = predictor
        self.max_entries = max_entries
        self._values: OrderedDict[str, PredictionValues] = OrderedDict()

    def lookup(self, texts: set[str]) -> dict[str, PredictionValues]:
        """The values of each text; the missing ones are scored in one Predictor call."""
        found: dict[str, PredictionValues] = {}
        missing: list[str] = []
        for text in texts:
            value = self._values.get(text)
            if value is None:
                missing.append(text)
            else:
                self._values.move_to_end(text)
                found[text] = value
        if missing:
            scores = self.predictor.score(missing)
            for text, value in zip(
                missing, prediction_values(scores, list(self.predictor.classes)), strict=True
            ):
                found[text] = value
                self._values[text] = value
            while len(self._values) > self.max_entries:
                self._values.popitem(last=False)
        return found


def score_cache(predictor: Predictor) -> ScoreCache:
    """This worker's value cache for a loaded Predictor."""
    cache = _SCORE_CACHES.get(predictor)
    if cache is None:
        cache = ScoreCache(predictor, SCORE_CACHE_ENTRIES)
        _SCORE_CACHES[predictor] = cache
    return cache


def prediction_values(scores: Scores, classes: list[str]) -> list[PredictionValues]:
    """Class, calibrated confidence, margin (top1 - top2), uncertainty, signals and JSON, once per
    distinct text."""
    import numpy as np

    probs = np.clip(scores.probabilities.astype(np.float64), 0.0, 1.0)
    order = np.sort(probs, axis=1)
    top1 = order[:, -1]
    top2 = order[:, -2] if probs.shape[1] > 1 else np.zeros(len(probs))
    best = probs.argmax(axis=1)
    confidence = np.clip(np.asarray(scores.confidence, dtype=np.float64), 0.0, 1.0)
    values = []
    for i, (row, k, margin) in enumerate(
        zip(probs.tolist(), best.tolist(), (top1 - top2).tolist(), strict=True)
    ):
        name = classes[k]
        conf = float(confidence[i])
        uncertainty = 1.0 - conf
        signals = {
            "seen": float(scores.seen[i]),
            "novelty": round(float(scores.novelty[i]), 4),
            "direction": round(float(scores.direction[i]), 4),
            "agreement": round(float(scores.agreement[i]), 4),
            **evidence_signals(scores, i, classes),
        }
        # Why it is unsure, in a pharmacist's words, for the review page (computed once here).
        signals["why"] = why_unsure(
            signals["seen"],
            signals["novelty"],
            signals["direction"],
            signals["agreement"],
            mirror=signals.get("mirror"),
            committee=signals.get("committee"),
            mixed=signals.get("mixed", False),
        )
        suffix = (
            f"\t{_copy_escape(name)}\t{conf!r}\t{margin!r}\t{json.dumps(row)}"
            f"\t{uncertainty!r}\t{_copy_escape(json.dumps(signals))}\n"
        )
        values.append(PredictionValues(name, conf, margin, row, uncertainty, signals, suffix))
    return values


def _copy_escape(text: str) -> str:
    """Escape a value for PostgreSQL's COPY text format."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def write_predictions(
    model_version_id: int, rows: list[tuple[int, str]], values: dict[str, PredictionValues]
) -> int:
    """Insert predictions for (interaction id, blinded text) rows, skipping existing pairs.

    Returns the rows inserted. Must run inside the caller's transaction. PostgreSQL: COPY
    straight into the table, falling back to COPY into a temporary table + INSERT ... ON
    CONFLICT DO NOTHING when a row already exists. Other databases: bulk_create(ignore_conflicts).
    """
    if connection.vendor == "postgresql":
        return _write_predictions_copy(model_version_id, rows, values)
    return _write_predictions_orm(model_version_id, rows, values)


_STAGE = "ddi_prediction_stage"


_COLUMNS = (
    "(interaction_id, model_version_id, predicted_class, confidence, margin, probabilities, "
    "uncertainty, signals)"
)


def _write_predictions_copy(
    model_version_id: int, rows: list[tuple[int, str]], values: dict[str, PredictionValues]
) -> int:
    import psycopg

    table = connection.ops.quote_name(Prediction._meta.db_table)
    # Per row only a string join: every other column was formatted once per distinct text.
    prefix = f"\t{model_version_id}"
    payload = "".join([f"{i}{prefix}{values[text].copy_suffix}" for i, text in rows])
    try:
        # The fast path: the rows were read as missing a moment ago, so a plain COPY into the
        # table nearly always succeeds (no staging pass, no conflict checks beyond the unique
        # index). Inside a savepoint so that a unique violation (a racing redelivery, a second
        # writer) rolls back only this attempt.
        with (
            transaction.atomic(),
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {table} {_COLUMNS} FROM STDIN") as copy,
        ):
            copy.write(payload)
        return len(rows)
    except psycopg.errors.UniqueViolation:
        logger.info("some of %s predictions exist already; inserting the others", len(rows))
    with connection.cursor() as cursor:
        # ON COMMIT DELETE ROWS: the staging table empties itself at every commit.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (interaction_id bigint, "
            "model_version_id bigint, predicted_class varchar(100), confidence double precision, "
            "margin double precision, probabilities jsonb, uncertainty double precision, "
            "signals jsonb) ON COMMIT DELETE ROWS"
        )
        with cursor.cursor.copy(f"COPY {_STAGE} {_COLUMNS} FROM STDIN") as copy:
            copy.write(payload)
        cursor.execute(
            f"INSERT INTO {table} {_COLUMNS} SELECT {_COLUMNS[1:-1]} FROM {_STAGE} "  # noqa: S608
            "ON CONFLICT (interaction_id, model_version_id) DO NOTHING"
        )
        inserted = cursor.rowcount
        cursor.execute(f"TRUNCATE {_STAGE}")
    return inserted


def _write_predictions_orm(
    model_version_id: int, rows: list[tuple[int, str]], values: dict[str, PredictionValues]
) -> int:
    objects = [
        Prediction(
            interaction_id=i,
            model_version_id=model_version_id,
            predicted_class=values[text].predicted_class,
            confidence=values[text].confidence,
            margin=values[text].margin,
            probabilities=values[text].probabilities,
            uncertainty=values[text].uncertainty,
            signals=values[text].signals,
        )
        for i, text in rows
    ]
    before = _changes()
    Prediction.objects.bulk_create(objects, ignore_conflicts=True, batch_size=500)
    after = _changes()
    return len(objects) if before is None else after - before


def _changes() -> int | None:
    """SQLite's count of rows changed on this connection (ignored conflicts do not count)."""
    if connection.vendor != "sqlite":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT total_changes()")
        return cursor.fetchone()[0]


# Keyed by the Predictor object itself: when the Predictor is dropped (evicted here, or by the
# loop simulation's cleanup), its cache goes with it, so a reused version id never sees stale
# values.
_SCORE_CACHES: weakref.WeakKeyDictionary[Predictor, ScoreCache] = weakref.WeakKeyDictionary()
