"""Signals that are not the softmax, and the confidence model fitted on out-of-fold scores.

Why not the softmax alone: a fine-tuned classifier is confidently wrong on a sentence pattern it
has never seen whose direction word contradicts its class ("the metabolism of DRUG_B can be
increased" means LESS drug B). Monotone calibration (a temperature) cannot reorder such rows, so
the served confidence is P(correct) estimated from these signals, by a logistic regression fitted
on the out-of-fold predictions of the cross-fitted committee (every labelled text scored by a
member that never saw it, with the signals computed against that member's own training texts):

- ``top``: the committee's mean probability of its class (as a logit);
- ``novelty``: the share of the text's words and word pairs that no labelled text contains
  ("unlike any labelled sentence"); cheap, and it works on free text where nothing repeats;
- ``direction``: for two-class projects whose classes are opposite directions (Synergistic /
  Antagonistic), the probability that the model gives the same class to the sentence and to its
  twin with increase/decrease, higher/lower, more/less swapped. A model that reads the direction
  word must flip; one that does not is guessing from the rest of the sentence.

A text that is itself labelled is a regime of its own, not a feature: the committee was trained
on it, so its confidence there is the committee's in-sample accuracy (Jeffreys estimate over the
labelled rows) when it agrees with the text's label, and one minus that when it does not.

The committee's disagreement (share of members voting for the mean's class) is reported, not
fitted: an out-of-fold score comes from one member, so out of fold it does not exist, and on a
labelled text exactly one member (the one that held it out) disagrees by construction. Measured
as a cap on the confidence it cost AUROC and ECE (bench/uncertainty.py, ablation).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

# Opposite direction words; each maps to its opposite (case kept). One-way entries turn a word
# without a one-word opposite into the nearest one ("reduced" -> "increased").
_PAIRS = (
    ("increase", "decrease"),
    ("increases", "decreases"),
    ("increased", "decreased"),
    ("increasing", "decreasing"),
    ("higher", "lower"),
    ("more", "less"),
    ("enhance", "reduce"),
    ("enhances", "reduces"),
    ("enhanced", "reduced"),
)
_ONE_WAY = {"reduction": "increase", "greater": "lower", "elevated": "reduced"}
SWAPS: dict[str, str] = {**_ONE_WAY}
for _a, _b in _PAIRS:
    SWAPS[_a], SWAPS[_b] = _b, _a
# The way each direction word points: up (more effect or exposure) or down.
_UP = frozenset({up for up, _ in _PAIRS} | {"greater", "elevated"})
_DOWN = frozenset({down for _, down in _PAIRS} | {"reduction"})
_SWAP_RE = re.compile(r"\b(" + "|".join(sorted(SWAPS, key=len, reverse=True)) + r")\b", re.I)
_WORD_RE = re.compile(r"[a-z0-9_]+")
FEATURES = ("top_logit", "novelty", "direction")


def direction_twin(text: str) -> str | None:
    """The text with every direction word swapped for its opposite; None when it has none."""

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        opposite = SWAPS[word.lower()]
        if word.isupper():
            return opposite.upper()
        return opposite.capitalize() if word[0].isupper() else opposite

    twin, count = _SWAP_RE.subn(swap, text)
    return twin if count else None


def mixed_directions(text: str) -> bool:
    """True when the text's direction words point both ways ("decrease the excretion ... higher
    serum level"): its class depends on which word is about the affected drug's effect, the
    sentences the guideline warns about, and the word alone cannot tell."""
    words = {match.group(0).lower() for match in _SWAP_RE.finditer(text)}
    return bool(words & _UP) and bool(words & _DOWN)


def grams(text: str) -> set[str]:
    """Lower-cased words, word pairs and word triples of a text."""
    words = _WORD_RE.findall(text.lower())
    pairs = {f"{a} {b}" for a, b in pairwise(words)}
    triples = {" ".join(words[i : i + 3]) for i in range(len(words) - 2)}
    return set(words) | pairs | triples


def text_key(text: str) -> str:
    """A short stable key of a labelled text (the artifact stores keys, not the texts)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


@dataclass(frozen=True)
class LabelledSet:
    """What a version was trained on: each labelled text's key -> class index, and n-grams.

    Also what the labelled texts say about the direction words (modeling.mirror): how many
    labelled texts have a labelled mirror (their direction twin) and how many of those pairs have
    opposite classes, and whether any labelled text has direction words pointing both ways.
    """

    labels: dict[str, int]
    vocab: frozenset[str]
    mirror_pairs: int = 0
    mirror_opposite: int = 0
    has_mixed: bool = False

    @classmethod
    def of(cls, texts: Sequence[str], labels: Sequence[int] | None = None) -> LabelledSet:
        """From the training texts (and their class indices; -1 when not given). A text labelled
        with two classes keeps its most frequent one."""
        votes: dict[str, Counter] = {}
        for i, text in enumerate(texts):
            votes.setdefault(text_key(text), Counter())[
                -1 if labels is None else int(labels[i])
            ] += 1
        keyed = {key: count.most_common(1)[0][0] for key, count in votes.items()}
        pairs = opposite = 0
        for text in {t: None for t in texts} if labels is not None else ():
            twin = direction_twin(text)
            key, twin_key = text_key(text), text_key(twin) if twin else ""
            if twin and twin_key in keyed and key < twin_key:  # each pair once
                pairs += 1
                opposite += int(keyed[twin_key] == 1 - keyed[key])
        mixed = any(mixed_directions(t) for t in set(texts))
        return cls(keyed, frozenset(vocabulary(texts)), pairs, opposite, mixed)

    def to_dict(self) -> dict:
        return {
            "labels": dict(sorted(self.labels.items())),
            "grams": sorted(self.vocab),
            "mirror_pairs": self.mirror_pairs,
            "mirror_opposite": self.mirror_opposite,
            "has_mixed": self.has_mixed,
        }

    @classmethod
    def from_dict(cls, data: dict) -> LabelledSet:
        """Older versions recorded no mirror counts: no pair (a mirror then carries no weight)
        and no mixed text."""
        return cls(
            {k: int(v) for k, v in data["labels"].items()},
            frozenset(data["grams"]),
            int(data.get("mirror_pairs", 0)),
            int(data.get("mirror_opposite", 0)),
            bool(data.get("has_mixed", False)),
        )

    @property
    def mirror_validity(self) -> float:
        """P(a labelled text's mirror has the opposite class): the Jeffreys estimate over the
        labelled pairs (0.5, no evidence, when no labelled text has a labelled mirror)."""
        return (self.mirror_opposite + 0.5) / (self.mirror_pairs + 1.0)

    def label_of(self, texts: Sequence[str]) -> np.ndarray:
        """The class index each exact text was labelled with; -2 where it is not labelled."""
        return np.asarray([self.labels.get(text_key(t), -2) for t in texts], dtype=np.int64)

    def seen(self, texts: Sequence[str]) -> np.ndarray:
        """1.0 where the exact text is labelled."""
        return (self.label_of(texts) != -2).astype(np.float64)

    def novelty(self, texts: Sequence[str]) -> np.ndarray:
        """Share of each text's n-grams that no labelled text has (0 for a labelled text)."""
        return np.asarray([novelty(t, self.vocab) for t in texts])


def vocabulary(texts: Iterable[str]) -> set[str]:
    """Every word and word pair of the labelled texts."""
    vocab: set[str] = set()
    for text in texts:
        vocab |= grams(text)
    return vocab


def novelty(text: str, vocab: set[str] | frozenset[str]) -> float:
    """Share of the text's words and word pairs absent from ``vocab`` (0 = all seen)."""
    own = grams(text)
    if not own:
        return 0.0
    return len(own - vocab) / len(own)


def direction_disagreement(probs: np.ndarray, twin_probs: np.ndarray | None) -> np.ndarray:
    """P(same class for a text and its twin) per row; 0 where a row has no twin (NaN rows)."""
    if twin_probs is None:
        return np.zeros(len(probs), dtype=np.float64)
    same = (np.asarray(probs, dtype=np.float64) * np.asarray(twin_probs, dtype=np.float64)).sum(1)
    return np.nan_to_num(same, nan=0.0)


def top_logit(probs: np.ndarray) -> np.ndarray:
    """logit of the top probability, clipped so saturated rows stay finite."""
    top = np.clip(np.asarray(probs, dtype=np.float64).max(axis=1), 1e-6, 1 - 1e-6)
    return np.log(top / (1 - top))


def feature_matrix(
    probs: np.ndarray, novelty_values: Sequence[float], direction: np.ndarray
) -> np.ndarray:
    """(n, 3) features in FEATURES order."""
    return np.column_stack(
        [
            top_logit(probs),
            np.asarray(novelty_values, dtype=np.float64),
            np.asarray(direction, dtype=np.float64),
        ]
    )


@dataclass(frozen=True)
class ConfidenceModel:
    """P(correct) = sigmoid(intercept + coef . features); JSON-serialisable (no pickle)."""

    coef: tuple[float, ...]
    intercept: float
    fitted_on: int  # distinct out-of-fold texts
    errors: int  # of which wrong
    note: str = ""
    seen_accuracy: float = 0.5  # in-sample accuracy on the labelled rows (Jeffreys estimate)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """P(correct) per row of a text nobody labelled, float64."""
        z = self.intercept + np.asarray(features, dtype=np.float64) @ np.asarray(self.coef)
        return 1.0 / (1.0 + np.exp(-z))

    def confidence(
        self, features: np.ndarray, predicted: np.ndarray, label_of: np.ndarray
    ) -> np.ndarray:
        """P(correct) per row: the fitted model for new texts, the in-sample accuracy (or one
        minus it, where the prediction contradicts the label) for labelled ones."""
        fitted = self.predict(features)
        agrees = np.where(predicted == label_of, self.seen_accuracy, 1.0 - self.seen_accuracy)
        return np.where(label_of >= 0, agrees, fitted)

    def to_dict(self) -> dict:
        return {
            "features": list(FEATURES),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "fitted_on": self.fitted_on,
            "errors": self.errors,
            "note": self.note,
            "seen_accuracy": self.seen_accuracy,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ConfidenceModel:
        return cls(
            coef=tuple(float(c) for c in data["coef"]),
            intercept=float(data["intercept"]),
            fitted_on=int(data.get("fitted_on", 0)),
            errors=int(data.get("errors", 0)),
            note=str(data.get("note", "")),
            seen_accuracy=float(data.get("seen_accuracy", 0.5)),
        )


def follow_labels(
    probs: np.ndarray, confidence: np.ndarray, label_of: np.ndarray, seen_accuracy: float
) -> tuple[np.ndarray, np.ndarray]:
    """(served probabilities, confidence) once each labelled text is served as its label says.

    Where the committee's class contradicts the label of the exact same text, the confidence
    model already gives that class 1 - seen_accuracy (ConfidenceModel.confidence): serving it
    anyway would write a class the version itself believes wrong into every duplicate of the
    sentence (and put those rows at the top of the queue). There the label's class gets
    ``seen_accuracy`` and the other classes share the rest in the committee's proportions, where
    that makes the label's class the largest share (a version that fits its labels); a version
    that does not (seen_accuracy at or below a coin toss on two classes) and texts without a
    known label are returned unchanged.
    """
    probs = np.asarray(probs, dtype=np.float64)
    rows = np.flatnonzero((label_of >= 0) & (probs.argmax(axis=1) != label_of))
    if not len(rows):
        return probs, confidence
    served, confidence = probs.copy(), np.asarray(confidence, dtype=np.float64).copy()
    for i in rows:
        others = served[i].copy()
        others[label_of[i]] = 0.0
        total = others.sum()
        share = others / total if total > 0 else np.full(len(others), 1.0 / (len(others) - 1))
        share[label_of[i]] = 0.0
        candidate = share * (1.0 - seen_accuracy)
        candidate[label_of[i]] = seen_accuracy
        if candidate[label_of[i]] > np.delete(candidate, label_of[i]).max():
            served[i], confidence[i] = candidate, seen_accuracy
    return served, confidence


# +1: the feature can only raise the confidence; -1: only lower it. A text being new, or read
# the same way with its direction words swapped, never makes the model more likely right.
_SIGNS = np.asarray([1.0, -1.0, -1.0])


def fit_confidence_model(
    features: np.ndarray, correct: np.ndarray, *, seen_accuracy: float = 0.5, l2: float = 1.0
) -> ConfidenceModel:
    """Logistic regression of correctness on the features, each coefficient's sign fixed.

    Rows are distinct texts (a few dozen is typical), so the fit is small: L2-penalised log-loss
    minimised by SciPy's L-BFGS-B with each coefficient bounded to its sign in _SIGNS (a
    monotone model: scikit-learn's LogisticRegression has no sign constraints). With no wrong
    (or no right) row a regression cannot be fitted; then the confidence is the Jeffreys estimate
    of the accuracy, lowered in proportion to novelty (an unseen text is a coin toss until
    something like it is labelled), and the model says so in ``note``.
    """
    from scipy.optimize import minimize

    features = np.asarray(features, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    n, errors = len(correct), int((~correct).sum())
    if n == 0 or errors == 0 or errors == n:
        accuracy = (n - errors + 0.5) / (n + 1.0)
        base = math.log(accuracy / (1 - accuracy))
        # novelty 1 takes the logit to 0 (probability 0.5); the top probability is not used.
        return ConfidenceModel(
            coef=(0.0, -base, 0.0),
            intercept=base,
            fitted_on=n,
            errors=errors,
            note="too few out-of-fold errors to fit; out-of-fold accuracy scaled by novelty",
            seen_accuracy=seen_accuracy,
        )
    x = features * _SIGNS  # every coefficient of x is >= 0
    y = correct.astype(np.float64)

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] + x @ params[1:]
        p = 1.0 / (1.0 + np.exp(-z))
        # log(1 + e^z) - y z, computed stably
        value = np.logaddexp(0.0, z).sum() - (y * z).sum() + 0.5 * l2 * (params[1:] ** 2).sum()
        grad_z = p - y
        grad = np.concatenate([[grad_z.sum()], x.T @ grad_z + l2 * params[1:]])
        return float(value), grad

    bounds = [(None, None)] + [(0.0, None)] * x.shape[1]
    start = np.zeros(x.shape[1] + 1)
    fitted = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    params = fitted.x
    return ConfidenceModel(
        coef=tuple(float(c) for c in params[1:] * _SIGNS),
        intercept=float(params[0]),
        fitted_on=n,
        errors=errors,
        seen_accuracy=seen_accuracy,
    )


def vote_share(member_probs: np.ndarray, mean_probs: np.ndarray) -> np.ndarray:
    """Share of members (axis 0) whose top class is the mean's top class."""
    top = mean_probs.argmax(axis=1)
    return (member_probs.argmax(axis=2) == top[None, :]).mean(axis=0)


@dataclass(frozen=True)
class Scores:
    """The served numbers of a batch of texts."""

    probabilities: np.ndarray  # (n, C) served: the committee mean (and a mirror: modeling.mirror)
    confidence: np.ndarray  # (n,) calibrated P(correct)
    uncertainty: np.ndarray  # (n,) 1 - confidence
    novelty: np.ndarray
    direction: np.ndarray
    agreement: np.ndarray  # vote share of the committee
    seen: np.ndarray  # 1.0 where the exact text is labelled
    # Two opposite classes only (modeling.mirror): the class a labelled mirror implies (-1:
    # none), the committee's own class, and whether the confidence was capped because the
    # direction words point both ways and no labelled text does.
    mirror: np.ndarray | None = None
    committee_class: np.ndarray | None = None
    mixed: np.ndarray | None = None
