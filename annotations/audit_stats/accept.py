"""Auto-accept: Learn-then-Test (MAPIE) per class, bands tested from the most confident down."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from annotations.audit_stats.sampling import (
    BAND_EDGES,
    AuditInputError,
    band_label,
    parse_stratum,
    stratum_key,
)

DELTA = 0.05


def check_alpha(alpha: float) -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError) as exc:
        raise AuditInputError(f"The target error rate must be a number, not {alpha!r}.") from exc
    if not (0.0 < value < 0.5) or math.isnan(value):
        raise AuditInputError(
            f"The target error rate must lie strictly between 0 and 0.5 (e.g. 0.01 for 1 %); "
            f"got {value}."
        )
    return value


def items_needed(alpha: float, delta: float = DELTA, classes: int = 1) -> int:
    """Audited items with no error a band needs before it can be certified at `alpha`."""
    delta = delta / max(1, classes)
    return math.ceil(math.log(delta) / math.log(1.0 - alpha))


def _band_certified(correct: np.ndarray, alpha: float, delta: float) -> tuple[bool, float]:
    """MAPIE Learn-then-Test for one band: is precision >= 1 - alpha at confidence 1 - delta?"""
    from mapie.risk_control import BinaryClassificationController

    if len(correct) == 0:
        return False, 1.0
    controller = BinaryClassificationController(
        predict_function=lambda x: np.column_stack([1.0 - x[:, 0], x[:, 0]]),
        risk="precision",
        target_level=1.0 - alpha,
        confidence_level=1.0 - delta,
        list_predict_params=np.asarray([0.0]),  # every audited row of the band is "accepted"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MAPIE warns when nothing can be certified
        controller.calibrate(np.ones((len(correct), 1)), np.asarray(correct, dtype=int))
    p_value = float(np.asarray(controller.p_values).ravel()[0])
    return len(controller.valid_predict_params) > 0, p_value


@dataclass
class ClassThreshold:
    predicted_class: str
    threshold: float | None  # lowest accepted confidence; None when no band is certified
    bands_accepted: list[int]
    rows_accepted: int
    rows: int
    note: str


def auto_accept_thresholds(
    strata: dict[str, tuple],
    classes: Sequence[str],
    alpha: float,
    delta: float = DELTA,
) -> list[ClassThreshold]:
    """Per class, the lowest band edge down to which every band is certified at `alpha`.

    `strata` maps stratum_key -> (rows drawn at random, their audited answers as
    correct/incorrect[, certainty clusters as (rows, their answers)]). A band is certified
    when MAPIE certifies its randomly drawn part (or it has none) and every certainty cluster in
    it was answered, and answered right every time: those rows are known, so they add no error
    to the accepted rows.
    """
    alpha = check_alpha(alpha)
    delta = delta / max(1, len(classes))  # one sequence per class: Bonferroni over classes

    def parts(key):
        size, answers, *rest = strata[key]
        return int(size), list(answers), list(rest[0]) if rest else []

    def rows_of(key):
        size, _, clusters = parts(key)
        return size + sum(int(r) for r, _ in clusters)

    out = []
    for name in classes:
        bands = sorted(
            (parse_stratum(key)[1], key) for key in strata if parse_stratum(key)[0] == name
        )
        rows = sum(rows_of(key) for _, key in bands)
        accepted: list[int] = []
        note = ""
        for band, key in reversed(bands):  # most confident first: fixed-sequence testing
            size, answers, clusters = parts(key)
            if rows_of(key) == 0:
                continue
            unsure = [r for r, got in clusters if not got or not all(got)]
            if unsure:
                note = (
                    f"band {band_label(band)} not certified: {len(unsure)} sentence pattern(s) "
                    f"of {sum(unsure):,} rows audited wrong or not answered yet"
                )
                break
            if size:
                ok, p_value = _band_certified(np.asarray(answers, dtype=bool), alpha, delta)
                if not ok:
                    wrong = int(len(answers) - np.sum(answers))
                    note = (
                        f"band {band_label(band)} not certified: {len(answers)} audited, {wrong} "
                        f"wrong (p = {p_value:.3f}; a band needs at least "
                        f"{items_needed(alpha, delta)} audited items without error at this error "
                        "rate)"
                    )
                    break
            accepted.append(band)
        rows_accepted = sum(rows_of(stratum_key(name, b)) for b in accepted)
        threshold = BAND_EDGES[min(accepted)] if accepted else None
        out.append(ClassThreshold(name, threshold, accepted, rows_accepted, rows, note))
    return out
