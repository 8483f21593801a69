"""Stratified train/validation split that copes with tiny classes and repeated texts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np


def stratified_split(
    label_ids: Sequence[int],
    validation_fraction: float,
    seed: int,
    groups: Sequence[Hashable] | None = None,
) -> tuple[list[int], list[int]]:
    """(train indices, validation indices), stratified by label, deterministic for a seed.

    With ``groups`` (e.g. the texts themselves) all members of a group land on the same side:
    templated data repeats sentences, and a validation copy of a training sentence says nothing
    about generalisation or calibration. Each class sends round(fraction * groups) of its groups to
    validation, at least one when it has two or more, and always keeps at least one for training;
    a class with a single group trains only. Indices come back sorted.
    """
    labels = np.asarray(label_ids, dtype=np.int64)
    keys = list(range(len(labels))) if groups is None else list(groups)
    members: dict[Hashable, list[int]] = {}
    for index, key in enumerate(keys):
        members.setdefault(key, []).append(index)
    # A group's class is its most common label (ties: the smallest id), for stratification.
    group_label = {
        key: Counter(labels[idx].tolist()).most_common(1)[0][0] for key, idx in members.items()
    }
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for label in sorted(set(group_label.values())):
        class_groups = [key for key in members if group_label[key] == label]
        order = rng.permutation(len(class_groups))
        n_val = 0
        if validation_fraction > 0 and len(class_groups) >= 2:
            n_val = min(
                max(round(validation_fraction * len(class_groups)), 1), len(class_groups) - 1
            )
        for rank, position in enumerate(order):
            (val if rank < n_val else train).extend(members[class_groups[position]])
    return sorted(train), sorted(val)
