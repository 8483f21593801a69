"""Mentions given as character offsets (the DDI-2013 style): parse, check, blind a sentence's pairs.

Corpora such as DDI Extraction 2013 ship each drug pair with the character offsets of its two
mentions (``29-36``, end INCLUSIVE; discontinuous mentions as ``98-107;124-144``). Offsets are
more exact than searching for the names (a name can occur twice, or be a discontinuous
coordination like "loop ... diuretics"), so an offset mapping blinds by offsets instead.

Pure functions over strings (no Django): the app reaches them through annotations/services/ml.py
and its importer turns the problems into ImportIssues.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from modeling.blinding import Span, blind_spans

_OFFSETS = re.compile(r"^\s*\d+\s*-\s*\d+\s*(;\s*\d+\s*-\s*\d+\s*)*$")
_SPACE = re.compile(r"\s+")


class OffsetProblem(ValueError):
    """Offsets that cannot be used; the message says what was expected."""


@dataclass(frozen=True)
class Mention:
    """A checked mention: end-exclusive spans into the sentence, and the shift applied (if any)."""

    spans: tuple[Span, ...]
    shift: int = 0

    def as_text(self) -> str:
        """The spans end-exclusive, e.g. ``29-37;40-45`` (stable: part of the content hash)."""
        return ";".join(f"{start}-{end}" for start, end in self.spans)


def parse_offsets(value: str, *, end_inclusive: bool = True) -> tuple[Span, ...]:
    """``'29-36'`` or ``'98-107;124-144'`` -> end-exclusive spans; raises OffsetProblem."""
    if not _OFFSETS.match(value):
        raise OffsetProblem(
            f"expected character offsets like '29-36' or '98-107;124-144', got {value!r}"
        )
    spans = []
    for part in value.split(";"):
        start, end = (int(number) for number in part.split("-"))
        end += 1 if end_inclusive else 0
        if end <= start:
            raise OffsetProblem(f"offsets {value!r}: {part.strip()!r} ends before it starts")
        spans.append((start, end))
    return tuple(spans)


def _squeezed(text: str) -> str:
    # Discontinuous mentions are joined with or without a space in the corpus ("alpha-
    # adrenergic" vs "loop diuretics"), so the comparison ignores whitespace.
    return _SPACE.sub("", text)


def locate_mention(
    sentence: str,
    offsets: str,
    mention_text: str,
    *,
    end_inclusive: bool = True,
    tolerance: int = 0,
) -> Mention:
    """Check that `offsets` select `mention_text` in `sentence`; raises OffsetProblem.

    With ``tolerance`` > 0, offsets shifted by up to that many characters (all parts alike) are
    accepted when the shifted spans select the mention: DDI-2013 has a few pairs whose offsets
    are off by one. The returned Mention records the shift so the caller can report it.
    """
    spans = parse_offsets(offsets, end_inclusive=end_inclusive)
    last_end = max(end for _, end in spans)
    if last_end > len(sentence):
        shown_end = last_end - 1 if end_inclusive else last_end
        raise OffsetProblem(
            f"offset {shown_end} falls outside the sentence ({len(sentence)} characters)"
        )
    wanted = _squeezed(mention_text)
    for shift in sorted(range(-tolerance, tolerance + 1), key=abs):
        moved = tuple((start + shift, end + shift) for start, end in spans)
        if moved[0][0] < 0 or moved[-1][1] > len(sentence):
            continue
        if _squeezed("".join(sentence[start:end] for start, end in moved)) == wanted:
            return Mention(spans=moved, shift=shift)
    selected = " ".join(sentence[start:end] for start, end in spans)
    raise OffsetProblem(
        f"offsets {offsets.strip()} select {selected!r}, expected the mention {mention_text!r}"
    )


def _overlaps(span: Span, others: Iterable[Span]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in others)


def blind_pair(
    sentence: str, mention_a: Mention, mention_b: Mention, all_mentions: Sequence[Mention]
) -> str:
    """The sentence with this pair's mentions as DRUG_A/DRUG_B and every other mention DRUG_OTHER.

    `all_mentions` are the mentions of every pair of the same sentence (duplicates are fine).
    Another mention overlapping A or B is dropped rather than allowed to hide part of A or B
    (nested and coordinated mentions such as "thiazide diuretics" inside "loop ... diuretics").
    """
    own = [*mention_a.spans, *mention_b.spans]
    others = sorted(
        {
            span
            for mention in all_mentions
            for span in mention.spans
            if span not in own and not _overlaps(span, own)
        }
    )
    return blind_spans(sentence, mention_a.spans, mention_b.spans, others)
