"""Entity blinding: replace the two drugs of an interaction with placeholders.

The model must learn the relation described by the sentence, not facts about particular drugs, so
both training and inference see ``DRUG_A``/``DRUG_B`` instead of the names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

PLACEHOLDER_A = "DRUG_A"
PLACEHOLDER_B = "DRUG_B"
PLACEHOLDER_OTHER = "DRUG_OTHER"

Span = tuple[int, int]


def _name_pattern(name: str) -> str:
    """Regex for one drug name: literal, case-insensitive, whitespace-tolerant, word-bounded."""
    words = name.split()
    body = r"\s+".join(re.escape(word) for word in words)
    # Boundaries only where the name itself starts/ends with a word character: "Ca2+" or
    # "(S)-warfarin" must still match next to punctuation. \w includes "_", so a short name such
    # as "A" never matches inside an already blinded "DRUG_A" (blinding stays idempotent).
    prefix = r"(?<!\w)" if re.match(r"\w", words[0][0]) else ""
    suffix = r"(?!\w)" if re.match(r"\w", words[-1][-1]) else ""
    return prefix + body + suffix


@lru_cache(maxsize=8192)
def _compile_name(name: str) -> re.Pattern[str]:
    """One compiled pattern per distinct name: names repeat across rows, pairs rarely do."""
    return re.compile(_name_pattern(name), flags=re.IGNORECASE)


def _names(drug_a: str, drug_b: str) -> list[tuple[str, str]]:
    """(group, name) for the non-empty names, longest first; one entry for a self-interaction."""
    candidates = [(g, n.strip()) for g, n in (("a", drug_a), ("b", drug_b)) if n and n.strip()]
    if len(candidates) == 2 and candidates[0][1].casefold() == candidates[1][1].casefold():
        candidates = candidates[:1]
    # At one position the longer name wins: "Estradiol valerate" over "Estradiol".
    candidates.sort(key=lambda item: len(item[1]), reverse=True)
    return candidates


def _matches(text: str, drug_a: str, drug_b: str) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, group) mentions, left to right, longer name first on ties.

    Same result as one regex alternation over both names (longest first), without compiling a
    new regex for every pair: imports of 100k+ rows spent most of their time compiling.
    """
    names = [(group, _compile_name(name)) for group, name in _names(drug_a, drug_b)]
    upcoming = [pattern.search(text) for _, pattern in names]
    chosen: list[tuple[int, int, str]] = []
    while True:
        live = [(m.start(), rank) for rank, m in enumerate(upcoming) if m is not None]
        if not live:
            return chosen
        start, rank = min(live)
        match = upcoming[rank]
        chosen.append((start, match.end(), names[rank][0]))
        cursor = match.end()
        for other, candidate in enumerate(upcoming):
            if candidate is not None and candidate.start() < cursor:
                # Search again from the cursor (lookbehinds still see the text before it).
                upcoming[other] = names[other][1].search(text, cursor)


def mentions(text: str, drug_a: str, drug_b: str) -> tuple[list[Span], list[Span]]:
    """Character spans (end exclusive) where drug A and drug B are mentioned; pure function."""
    spans_a: list[Span] = []
    spans_b: list[Span] = []
    for start, end, group in _matches(text, drug_a, drug_b):
        (spans_a if group == "a" else spans_b).append((start, end))
    return spans_a, spans_b


def blind(text: str, drug_a: str, drug_b: str) -> str:
    """Replace each mention of drug A/B with DRUG_A/DRUG_B; absent names leave the text as is."""
    pieces: list[str] = []
    cursor = 0
    for start, end, group in _matches(text, drug_a, drug_b):
        pieces.append(text[cursor:start])
        pieces.append(PLACEHOLDER_A if group == "a" else PLACEHOLDER_B)
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def blind_spans(
    text: str,
    spans_a: Sequence[Span],
    spans_b: Sequence[Span],
    other_spans: Sequence[Span] = (),
) -> str:
    """Replace character spans (end exclusive) with placeholders, e.g. for DDI-2013 entity offsets.

    Overlapping spans are resolved by taking the earliest, then the longest; the others are
    dropped (DDI-2013 has nested and discontinuous mentions). Raises ValueError on spans outside
    the text.
    """
    tagged = [(span, PLACEHOLDER_A) for span in spans_a]
    tagged += [(span, PLACEHOLDER_B) for span in spans_b]
    tagged += [(span, PLACEHOLDER_OTHER) for span in other_spans]
    for (start, end), _ in tagged:
        if not 0 <= start < end <= len(text):
            raise ValueError(f"span ({start}, {end}) is outside a text of length {len(text)}")
    tagged.sort(key=lambda item: (item[0][0], -(item[0][1] - item[0][0])))
    pieces: list[str] = []
    cursor = 0
    for (start, end), placeholder in tagged:
        if start < cursor:
            continue
        pieces.append(text[cursor:start])
        pieces.append(placeholder)
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)
