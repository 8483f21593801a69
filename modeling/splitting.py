"""Stratified train/validation split that copes with tiny classes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def stratified_split(
    label_ids: Sequence[int], validation_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """(train indices, validation indices), per class, deterministic for a seed.

    Each class sends round(fraction * count) examples to validation, at least one when it has two
    or more, and always keeps at least one for training; a class with a single example trains
    only. Indices come back sorted.
    """
    labels = np.asarray(label_ids, dtype=np.int64)
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_val = 0
        if validation_fraction > 0 and len(members) >= 2:
            n_val = min(max(round(validation_fraction * len(members)), 1), len(members) - 1)
        val.extend(members[:n_val].tolist())
        train.extend(members[n_val:].tolist())
    return sorted(train), sorted(val)
