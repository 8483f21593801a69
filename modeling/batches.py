"""Batches of repeated texts: each distinct (text, label) pair runs once, its loss weighted."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F


def collapse_batch(batch: Sequence[int], groups: Sequence[int]) -> tuple[list[int], list[int]]:
    """The batch's first example of each distinct (text, label) pair and how often it occurs.

    Templated data repeats sentences (192 DrugBank seed rows are 16 blinded texts): a batch of
    16 holds about 9 distinct ones, and running copies through the encoder is wasted work.
    """
    position: dict[int, int] = {}
    rows: list[int] = []
    copies: list[int] = []
    for i in batch:
        g = groups[i]
        if g in position:
            copies[position[g]] += 1
        else:
            position[g] = len(rows)
            rows.append(i)
            copies.append(1)
    return rows, copies


def weighted_batch_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    copies: torch.Tensor,
    class_weight: torch.Tensor | None,
) -> torch.Tensor:
    """Cross-entropy of a collapsed batch, equal to F.cross_entropy(..., weight=class_weight)
    over the uncollapsed batch (the weighted mean sum(w_y * loss) / sum(w_y), each distinct
    example counted ``copies`` times)."""
    losses = F.cross_entropy(logits, targets, reduction="none")
    w = copies.to(losses.dtype)
    if class_weight is not None:
        w = w * class_weight[targets]
    return (losses * w).sum() / w.sum()
