"""DDI Extraction 2013 as relation extraction: corpus rows, entity markers, negative filtering.

Pure functions over the corpus CSV (one row per drug pair, ``ddi2013_pairs.csv``):

- ``load_pairs``: the rows as ``DdiPair`` (end-exclusive spans of both mentions and of every
  other drug mention of the same sentence);
- ``render``: the text the model reads, in one of three styles (``STYLES``): the app's typed
  blinding (DRUG_A / DRUG_B / DRUG_OTHER), typed entity markers around the real names
  (``@ * drug * aspirin @ ... # ^ group ^ NSAIDs #``, the "typed entity marker (punct)" of Zhou &
  Chen 2021: plain punctuation the frozen embeddings already know), or both (markers around the
  placeholders). The character positions of the two entity starts come along for pooling;
- ``filter_rule``: the negative-instance filter of the DDI literature, the same for train and
  test: a pair the rules drop is never shown to the model and, in the test split, counts as
  predicted negative (the scoring stays the shared task's). ``filter_report`` counts what each
  rule removes per split and how many POSITIVE pairs it would drop, so nothing is silent.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from modeling.blinding import PLACEHOLDER_A, PLACEHOLDER_B, PLACEHOLDER_OTHER, Span
from modeling.offsets import locate_mention

CLASSES = ("mechanism", "effect", "advise", "int", "negative")
POSITIVE_CLASSES = ("mechanism", "effect", "advise", "int")
NEGATIVE = "negative"
STYLES = ("blind", "markers", "blind-markers")
# Typed entity markers (punct): one single-token character each in BERT-family vocabularies.
MARK_A = ("@", "*")
MARK_B = ("#", "^")


@dataclass(frozen=True)
class Entity:
    """One drug mention: its text, DDI-2013 type (drug, brand, group, drug_n) and spans."""

    text: str
    type: str
    spans: tuple[Span, ...]

    @property
    def start(self) -> int:
        return min(start for start, _ in self.spans)

    @property
    def end(self) -> int:
        return max(end for _, end in self.spans)


@dataclass(frozen=True)
class DdiPair:
    """One candidate pair of the corpus; ``label`` is one of CLASSES (or 'unknown')."""

    split: str
    pair_id: str
    sentence_id: str
    sentence: str
    e1: Entity
    e2: Entity
    label: str
    others: tuple[Span, ...] = ()  # the sentence's other drug mentions


def load_pairs(path: Path) -> list[DdiPair]:
    """Every row of the corpus CSV as a DdiPair, in file order; offsets checked (tolerance 1)."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    entities: dict[tuple[str, str], tuple[Span, ...]] = {}
    parsed = []
    for line, row in enumerate(rows, start=2):
        ents = []
        for side in ("e1", "e2"):
            try:
                mention = locate_mention(
                    row["sentence"], row[f"{side}_offset"], row[f"{side}_text"], tolerance=1
                )
            except ValueError as error:
                raise ValueError(f"{path} line {line} ({side}): {error}") from error
            ents.append(Entity(row[f"{side}_text"], row[f"{side}_type"], mention.spans))
            entities[(row["sentence_id"], mention.as_text())] = mention.spans
        parsed.append((row, ents))
    by_sentence: dict[str, list[tuple[Span, ...]]] = defaultdict(list)
    for (sentence_id, _), spans in entities.items():
        by_sentence[sentence_id].append(spans)
    pairs = []
    for row, (e1, e2) in parsed:
        others = tuple(
            span
            for spans in by_sentence[row["sentence_id"]]
            if spans not in (e1.spans, e2.spans)
            for span in spans
        )
        pairs.append(
            DdiPair(
                split=row["split"],
                pair_id=row["pair_id"],
                sentence_id=row["sentence_id"],
                sentence=row["sentence"],
                e1=e1,
                e2=e2,
                label=row["type"],
                others=others,
            )
        )
    return pairs


# -- rendering ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    """The model's input text and the character offsets where entity 1 and entity 2 start."""

    text: str
    e1_char: int
    e2_char: int


def render(pair: DdiPair, style: str) -> Rendered:
    """The pair's sentence in `style` (see STYLES); overlapping mentions: earliest, then longest."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; expected one of {', '.join(STYLES)}")
    blinded = style != "markers"
    tagged = [(span, "a") for span in pair.e1.spans] + [(span, "b") for span in pair.e2.spans]
    if blinded:
        tagged += [(span, "o") for span in pair.others]
    tagged.sort(key=lambda item: (item[0][0], -(item[0][1] - item[0][0])))
    pieces: list[str] = []
    cursor, length = 0, 0
    starts = {"a": -1, "b": -1}
    done = {"a": False, "b": False}

    def emit(piece: str) -> None:
        nonlocal length
        pieces.append(piece)
        length += len(piece)

    for (start, end), who in tagged:
        if start < cursor:
            continue
        emit(pair.sentence[cursor:start])
        name = pair.sentence[start:end]
        if who == "o":
            emit(PLACEHOLDER_OTHER)
        else:
            shown = (PLACEHOLDER_A if who == "a" else PLACEHOLDER_B) if blinded else name
            entity = pair.e1 if who == "a" else pair.e2
            if style == "blind" or done[who]:  # done: a later part of a discontinuous mention
                body = shown
            else:
                outer, inner = MARK_A if who == "a" else MARK_B
                body = f"{outer} {inner} {entity.type} {inner} {shown} {outer}"
            if starts[who] < 0:
                starts[who] = length
            done[who] = True
            emit(body)
        cursor = end
    emit(pair.sentence[cursor:])
    return Rendered("".join(pieces), starts["a"], starts["b"])


# -- negative-instance filtering ------------------------------------------------------------------

_SPACE = re.compile(r"\s+")
_OTHER = "\x00"  # stands for another drug mention inside the text between the two entities
# "A (B)" or "A, also known as B": one drug named twice (abbreviation / synonym).
_SYNONYM = re.compile(r"^\s*(\(|\[|,?\s*(also\s+known\s+as|or\s+other\s+names?|i\.e\.,?)\s*)\s*$")
# "NSAIDs such as B", "anticoagulants (e.g., B", "A, including B, ...": B a special case of the
# group A (the first mention must be of type group: "metabolism of X (e.g., Y)" is no hyponym).
_HYPONYM = re.compile(
    r"^\s*[,(]?\s*(such\s+as|including|e\.g\.,?|for\s+example,?|like|especially|particularly)"
    r"\s*([\s,;]|\x00|and|or)*$"
)
# A list "A, B, C and D" between the two: only commas, other drugs and and/or (>= 1 comma/drug).
_LIST = re.compile(r"^[\s,;]*((\x00|and|or|and/or)[\s,;]*)*$")

RULES = ("same-drug", "synonym", "special-case", "coordination")


def _between(pair: DdiPair) -> str:
    """Sentence text between the two mentions, other drug mentions replaced by _OTHER."""
    first, second = sorted((pair.e1, pair.e2), key=lambda e: e.start)
    lo, hi = first.end, second.start
    if hi < lo:
        return ""  # overlapping / nested mentions
    text = pair.sentence
    pieces, cursor = [], lo
    for start, end in sorted(pair.others):
        if start >= cursor and end <= hi:
            pieces.append(text[cursor:start])
            pieces.append(_OTHER)
            cursor = end
    pieces.append(text[cursor:hi])
    return "".join(pieces).lower()


def _norm(name: str) -> str:
    return _SPACE.sub(" ", name).strip().casefold().rstrip("s")


def filter_rule(pair: DdiPair) -> str | None:
    """The first of RULES that drops this pair as a sure negative, or None to keep it."""
    if _norm(pair.e1.text) == _norm(pair.e2.text):
        return "same-drug"
    between = _between(pair)
    if _SYNONYM.match(between):
        return "synonym"
    first = min((pair.e1, pair.e2), key=lambda e: e.start)
    if first.type == "group" and _HYPONYM.match(between):
        return "special-case"
    if (_OTHER in between or "," in between) and _LIST.match(between):
        return "coordination"
    return None


def filter_report(pairs: Iterable[DdiPair], rules: Sequence[str] = RULES) -> dict:
    """Per split: pairs, kept, and per rule the pairs removed and the POSITIVE pairs among them."""
    report: dict[str, dict] = {}
    for pair in pairs:
        split = report.setdefault(
            pair.split,
            {"pairs": 0, "kept": 0, "removed": {r: 0 for r in rules}, "positives": Counter()},
        )
        split["pairs"] += 1
        rule = filter_rule(pair)
        if rule is None or rule not in rules:
            split["kept"] += 1
            continue
        split["removed"][rule] += 1
        if pair.label in POSITIVE_CLASSES:
            split["positives"][f"{rule}:{pair.label}"] += 1
    for split in report.values():
        split["positives_removed"] = sum(split["positives"].values())
        split["positives"] = dict(split["positives"])
    return report


def apply_filter(
    pairs: Sequence[DdiPair], rules: Sequence[str] = RULES
) -> tuple[list[DdiPair], list[DdiPair]]:
    """(kept, removed) under `rules`; the same function for train and test."""
    kept, removed = [], []
    for pair in pairs:
        rule = filter_rule(pair)
        (removed if rule is not None and rule in rules else kept).append(pair)
    return kept, removed


def predictions_with_filter(
    pairs: Sequence[DdiPair], model_predictions: dict[str, str], removed_ids: set[str]
) -> list[str]:
    """One class per pair: NEGATIVE for a filtered pair, else the model's (by pair id).

    Raises ValueError when a kept pair has no model prediction (never a silent negative).
    """
    missing = [
        p.pair_id
        for p in pairs
        if p.pair_id not in removed_ids and p.pair_id not in model_predictions
    ]
    if missing:
        raise ValueError(f"{len(missing)} kept pairs have no prediction, e.g. {missing[0]}")
    return [NEGATIVE if p.pair_id in removed_ids else model_predictions[p.pair_id] for p in pairs]
