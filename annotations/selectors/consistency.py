"""Consistency checks: places where the labels contradict each other (shown, never auto-fixed).

(a) **pair**: the same ordered drug pair (drug A, drug B, case-insensitive) has two or more
    sentences whose final labels differ. Some differ legitimately (DrugBank states two effects
    for some pairs), so the page lists them for a person to look at.
(b) **pattern**: the same blinded text (one sentence pattern) carries different human labels.
(c) **near_duplicate**: two different blinded texts that are nearly the same (rapidfuzz's
    normalized Indel similarity >= NEAR_DUPLICATE_SCORE) whose majority final labels differ:
    often a real direction word ("increase" / "decrease"), sometimes a slip.

The checks themselves are pure functions over plain rows (tested on the full DrugBank set);
`get_consistency_report` feeds them from the database (one pass over the final labels, one over
the interactions) and caches the answer under a fingerprint of labels, rules, interactions and
the serving model version. Read-only.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db.models import Count, Max, Min

from annotations.models import HUMAN_SOURCES, Interaction, Label, Project, Rule
from annotations.selectors.final_labels import iter_final_labels
from annotations.selectors.versions import get_serving_model_version

NEAR_DUPLICATE_SCORE = 90.0
CACHE_S = 600
KINDS = {
    "pair": "same drug pair, contradicting final labels",
    "pattern": "same blinded text, different human labels",
    "near_duplicate": "near-duplicate blinded texts, different final labels",
}


@dataclass(frozen=True)
class ConsistencyGroup:
    kind: str
    title: str
    # interaction id -> its label in this check (final or human)
    labels: dict[int, str]

    @property
    def interaction_ids(self) -> list[int]:
        return sorted(self.labels)


@dataclass
class ConsistencyReport:
    groups: dict[str, list[ConsistencyGroup]] = field(
        default_factory=lambda: {kind: [] for kind in KINDS}
    )
    pairs_with_several_sentences: int = 0

    def counts(self) -> dict[str, int]:
        return {kind: len(groups) for kind, groups in self.groups.items()}

    def interaction_ids(self, kind: str) -> set[int]:
        return {pk for group in self.groups.get(kind, []) for pk in group.labels}


def find_pair_contradictions(
    rows: Iterable[tuple[int, str, str, str]],
) -> tuple[list[ConsistencyGroup], int]:
    """rows: (interaction id, drug A, drug B, final label). Returns the contradicting pairs and
    how many ordered pairs have two or more sentences at all. Pure."""
    by_pair: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    for pk, drug_a, drug_b, label in rows:
        by_pair[(drug_a.casefold(), drug_b.casefold())][pk] = label
    several = [(pair, labels) for pair, labels in by_pair.items() if len(labels) >= 2]
    groups = [
        ConsistencyGroup("pair", f"{pair[0]} + {pair[1]}", labels)
        for pair, labels in sorted(several)
        if len(set(labels.values())) > 1
    ]
    return groups, len(several)


def find_pattern_conflicts(rows: Iterable[tuple[int, str, str, str]]) -> list[ConsistencyGroup]:
    """rows: (interaction id, pattern hash, blinded text, human label). Pure."""
    by_pattern: dict[str, dict[int, str]] = defaultdict(dict)
    texts: dict[str, str] = {}
    for pk, pattern, text, label in rows:
        by_pattern[pattern][pk] = label
        texts[pattern] = text
    return [
        ConsistencyGroup("pattern", texts[pattern], labels)
        for pattern, labels in sorted(by_pattern.items())
        if len(set(labels.values())) > 1
    ]


def find_near_duplicates(
    texts: dict[str, tuple[str, dict[int, str]]], *, score: float = NEAR_DUPLICATE_SCORE
) -> list[ConsistencyGroup]:
    """texts: pattern hash -> (blinded text, {interaction id: final label}). Pairs of different
    texts at least `score` similar whose majority labels differ, most similar first. Pure.

    rapidfuzz's cdist compares every text with every other in C, in slices of 500 rows so the
    score matrix stays small (10,000 texts: 10,000 x 500 bytes per slice).
    """
    from rapidfuzz import fuzz, process

    keys = sorted(texts)
    strings = [texts[key][0] for key in keys]
    majority = [
        Counter(texts[key][1].values()).most_common(1)[0][0] if texts[key][1] else None
        for key in keys
    ]
    found: list[tuple[float, int, int]] = []
    for start in range(0, len(keys), 500):
        matrix = process.cdist(
            strings[start : start + 500], strings, scorer=fuzz.ratio, score_cutoff=score
        )
        for offset, row in enumerate(matrix):
            i = start + offset
            for j in row.nonzero()[0]:
                if j > i and majority[i] and majority[j] and majority[i] != majority[j]:
                    found.append((float(row[j]), i, int(j)))
    found.sort(key=lambda hit: (-hit[0], hit[1], hit[2]))
    groups = []
    for similarity, i, j in found:
        labels = {**texts[keys[i]][1], **texts[keys[j]][1]}
        title = f"{strings[i]}  ≈  {strings[j]}  ({similarity:.0f}% similar)"
        groups.append(ConsistencyGroup("near_duplicate", title, labels))
    return groups


def _fingerprint(project: Project) -> str:
    labels = Label.objects.filter(interaction__project=project).aggregate(
        n=Count("pk"), last=Max("updated_at")
    )
    rules = Rule.objects.filter(project=project).aggregate(n=Count("pk"), last=Max("updated_at"))
    version = get_serving_model_version(project=project)
    last_interaction = Interaction.objects.filter(project=project).aggregate(m=Max("pk"))["m"]
    parts = (project.pk, labels["n"], labels["last"], rules["n"], rules["last"], last_interaction)
    raw = ":".join(map(str, (*parts, version.pk if version else None)))
    return "consistency:" + hashlib.sha256(raw.encode()).hexdigest()


def get_consistency_report(*, project: Project) -> ConsistencyReport:
    """All three checks over the project (cached until labels, rules or data change)."""
    key = _fingerprint(project)
    report = cache.get(key)
    if report is not None:
        return report
    final = {row.interaction_id: row.final_label for row in iter_final_labels(project=project)}
    facts = Interaction.objects.filter(project=project).values_list(
        "id", "drug_a", "drug_b", "pattern_hash"
    )
    pair_rows, per_pattern = [], defaultdict(dict)
    for pk, drug_a, drug_b, pattern in facts.iterator(chunk_size=5000):
        if pk in final:
            pair_rows.append((pk, drug_a, drug_b, final[pk]))
            per_pattern[pattern][pk] = final[pk]
    report = ConsistencyReport()
    report.groups["pair"], report.pairs_with_several_sentences = find_pair_contradictions(pair_rows)
    human = Label.objects.filter(
        interaction__project=project, source__in=HUMAN_SOURCES, status=Label.Status.LABELED
    ).values_list(
        "interaction_id", "interaction__pattern_hash", "interaction__blinded_text", "label_class"
    )
    report.groups["pattern"] = find_pattern_conflicts(human.iterator(chunk_size=5000))
    texts = dict(
        Interaction.objects.filter(project=project)
        .values("pattern_hash")
        .annotate(text=Min("blinded_text"))
        .values_list("pattern_hash", "text")
    )
    report.groups["near_duplicate"] = find_near_duplicates(
        {pattern: (texts[pattern], labels) for pattern, labels in per_pattern.items()}
    )
    cache.set(key, report, CACHE_S)
    return report
