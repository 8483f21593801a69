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


@lru_cache(maxsize=4096)
def _compile(drug_a: str, drug_b: str) -> re.Pattern[str] | None:
    """One alternation over both names, longest first, with the placeholder as group name."""
    candidates = []
    for group, name in (("a", drug_a), ("b", drug_b)):
        if name and name.strip():
            candidates.append((group, name.strip()))
    if not candidates:
        return None
    if len(candidates) == 2 and candidates[0][1].casefold() == candidates[1][1].casefold():
        # Same drug on both sides (self-interaction): one name, one placeholder.
        candidates = candidates[:1]
    # At a given position the regex engine takes the first alternative that matches, so the
    # longer name must come first: "Estradiol valerate" wins over "Estradiol".
    candidates.sort(key=lambda item: len(item[1]), reverse=True)
    alternation = "|".join(f"(?P<{group}>{_name_pattern(name)})" for group, name in candidates)
    return re.compile(alternation, flags=re.IGNORECASE)


def mentions(text: str, drug_a: str, drug_b: str) -> tuple[list[Span], list[Span]]:
    """Character spans (end exclusive) where drug A and drug B are mentioned; pure function."""
    pattern = _compile(drug_a, drug_b)
    spans_a: list[Span] = []
    spans_b: list[Span] = []
    if pattern is None:
        return spans_a, spans_b
    for match in pattern.finditer(text):
        (spans_a if match.lastgroup == "a" else spans_b).append(match.span())
    return spans_a, spans_b


def blind(text: str, drug_a: str, drug_b: str) -> str:
    """Replace each mention of drug A/B with DRUG_A/DRUG_B; absent names leave the text as is."""
    pattern = _compile(drug_a, drug_b)
    if pattern is None:
        return text
    return pattern.sub(
        lambda match: PLACEHOLDER_A if match.lastgroup == "a" else PLACEHOLDER_B,
        text,
    )


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
