"""Scoring the final labels (review > seed > rule > model) against the reference."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from annotations.models import Interaction, Project
from annotations.selectors.final_labels import FinalLabelStats, iter_final_labels
from annotations.simulation.reference import Reference


@dataclass
class Score:
    """Final labels vs the reference over the rows whose pattern the reference knows."""

    rows: int = 0
    correct: int = 0
    macro_f1: float = 0.0
    not_covered: int = 0  # rows whose pattern the reference does not know (not scored)
    by_source: Counter = field(default_factory=Counter)
    # pattern -> [rows, correct, reference class, most common final label]
    per_pattern: dict[str, list] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.correct / self.rows if self.rows else 0.0

    @property
    def wrong(self) -> int:
        return self.rows - self.correct


def score_final_labels(*, project: Project, reference: Reference) -> Score:
    """Accuracy and macro-F1 of the final labels (review > seed > rule > model). Read-only.

    A row with no final label at all (no model yet) counts as wrong.
    """
    from sklearn.metrics import f1_score

    texts = dict(
        Interaction.objects.filter(project=project).values_list("pk", "blinded_text").iterator()
    )
    final: dict[int, str] = {}
    stats = FinalLabelStats()
    for row in iter_final_labels(project=project, stats=stats):
        final[row.interaction_id] = row.final_label
    score = Score(by_source=Counter(stats.by_source))
    truth, predicted = [], []
    tallies: dict[str, Counter] = {}
    for pk, text in texts.items():
        expected = reference.classes_by_pattern.get(text)
        if expected is None:
            score.not_covered += 1
            continue
        got = final.get(pk, "")
        score.rows += 1
        score.correct += got == expected
        truth.append(expected)
        predicted.append(got)
        tallies.setdefault(text, Counter())[got] += 1
        entry = score.per_pattern.setdefault(text, [0, 0, expected, ""])
        entry[0] += 1
        entry[1] += got == expected
    for text, counts in tallies.items():
        score.per_pattern[text][3] = counts.most_common(1)[0][0]
    if truth:
        labels = sorted(set(truth) | (set(predicted) - {""}))
        score.macro_f1 = float(f1_score(truth, predicted, labels=labels, average="macro"))
    return score
