"""Drug-name highlighting for the review page (modeling.blinding, through services/ml.py).

The HTML is built from escaped pieces with format_html (never mark_safe on raw text), so a
description containing markup is shown as text.
"""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from annotations.services.ml import mentions


def highlight_mentions(
    text: str, drug_a: str, drug_b: str, *, extra: dict | None = None
) -> SafeString:
    """`text` as safe HTML with drug A and drug B mentions wrapped in <mark> (pure function).

    Interactions imported by offsets (DDI-2013) carry their exact spans in extra["spans_a"/"_b"]
    (end exclusive); those are marked instead of every occurrence of the names.
    """
    extra = extra or {}
    if extra.get("spans_a") and extra.get("spans_b"):
        spans_a = [tuple(span) for span in extra["spans_a"]]
        spans_b = [tuple(span) for span in extra["spans_b"]]
    else:
        spans_a, spans_b = mentions(text, drug_a, drug_b)
    marks = sorted([(s, e, "a") for s, e in spans_a] + [(s, e, "b") for s, e in spans_b])
    pieces: list[tuple[str, str, str]] = []
    position = 0
    for start, end, which in marks:
        if start < position:  # overlapping (name search: impossible; corpus offsets: nested)
            continue
        pieces.append(("plain", text[position:start], ""))
        pieces.append((which, text[start:end], "Drug A" if which == "a" else "Drug B"))
        position = end
    pieces.append(("plain", text[position:], ""))
    return format_html_join(
        "",
        "{}",
        (
            (
                format_html('<mark class="drug drug-{}" title="{}">{}</mark>', kind, title, chunk)
                if kind != "plain"
                else format_html("{}", chunk),
            )
            for kind, chunk, title in pieces
            if chunk
        ),
    )
