"""Direction evidence the committee's probabilities do not carry, for two opposite classes.

A committee trained on a few sentence patterns reads a new one by its nearest labelled sentence,
and a sentence whose direction word and class disagree ("the metabolism of DRUG_B can be
increased" means LESS drug B) fools all its members alike. Two pieces of evidence that do not
come from the committee (Synergistic / Antagonistic style projects, the same condition as the
direction probe):

- **the labelled mirror**: when a text's direction twin (increase/decrease, higher/lower,
  more/less swapped; modeling.uncertainty.direction_twin) is a labelled text, the labelling
  guideline makes this text the opposite class. How often that holds is measured on the labelled
  texts whose mirror is labelled too (a Jeffreys estimate, LabelledSet.mirror_validity; 0.5, no
  weight, while no such pair exists). It is combined with the committee's calibrated confidence
  as two independent opinions (naive Bayes over the two classes, uniform prior): the served
  class follows the mirror when the mirror is the stronger opinion, and the confidence is the
  combined probability. A reviewer who labels one sentence of a pair thereby labels its mirror.
- **direction words pointing both ways** ("may decrease the excretion rate ... higher serum
  level"): while no labelled text is like that, nothing the committee learned tells which word
  is about the drug's effect, so its confidence there is capped at a coin toss (0.5) and the
  review page says why. Once such a sentence is labelled, the fitted confidence model applies.

Labelled texts keep their own regime (modeling.uncertainty.ConfidenceModel.confidence).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modeling.uncertainty import LabelledSet, Scores, mixed_directions

COIN_TOSS = 0.5


def mirror_posterior(
    confidence: np.ndarray, committee: np.ndarray, implied: np.ndarray, validity: float
) -> np.ndarray:
    """(n, 2) P(class) combining the committee (its class with ``confidence``) and the mirror (its
    implied class with ``validity``) as independent opinions under a uniform prior."""
    n = len(confidence)
    rows = np.arange(n)
    model = np.empty((n, 2), dtype=np.float64)
    model[rows, committee] = confidence
    model[rows, 1 - committee] = 1.0 - confidence
    mirror = np.full((n, 2), 1.0 - validity, dtype=np.float64)
    mirror[rows, implied] = validity
    joint = model * mirror
    total = joint.sum(axis=1, keepdims=True)
    return np.divide(joint, total, out=np.full_like(joint, 0.5), where=total > 0)


def direction_evidence(
    probs: np.ndarray,
    confidence: np.ndarray,
    texts: Sequence[str],
    twins: Sequence[str | None],
    label_of: np.ndarray,
    labelled: LabelledSet,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(served probabilities, confidence, implied mirror class or -1, capped) per text.

    ``probs``: the committee's mean (n, 2); ``confidence``: its calibrated P(correct);
    ``label_of``: LabelledSet.label_of(texts) (-2 where not labelled). ``capped``: direction
    words both ways, unlabelled, and no labelled text like it (the confidence was capped: what
    the review page's reason says). Labelled texts are returned unchanged.
    """
    unlabelled = label_of == -2
    confidence = np.asarray(confidence, dtype=np.float64).copy()
    capped = np.zeros(len(texts), dtype=bool)
    if not labelled.has_mixed:
        capped = unlabelled & np.asarray([mixed_directions(t) for t in texts], dtype=bool)
        confidence[capped] = np.minimum(confidence[capped], COIN_TOSS)
    twin_labels = labelled.label_of([twin or "" for twin in twins])
    mirror = np.where(unlabelled & (twin_labels >= 0), 1 - twin_labels, -1)
    served = np.asarray(probs, dtype=np.float64).copy()
    rows = np.flatnonzero(mirror >= 0)
    if len(rows):
        posterior = mirror_posterior(
            confidence[rows], served[rows].argmax(axis=1), mirror[rows], labelled.mirror_validity
        )
        served[rows] = posterior
        confidence[rows] = posterior.max(axis=1)
    return served, confidence, mirror, capped


def evidence_signals(scores: Scores, i: int, classes: Sequence[str]) -> dict:
    """Row i's labelled-mirror class (None: no labelled mirror), the committee's own class and
    the mixed-directions flag, as uncertainty.reasons() takes them; empty where the project has
    no direction evidence (not two opposite classes)."""
    if scores.mirror is None:
        return {}
    mirror = int(scores.mirror[i])
    return {
        "mirror": classes[mirror] if mirror >= 0 else None,
        "committee": classes[int(scores.committee_class[i])],
        "mixed": bool(scores.mixed[i]),
    }
