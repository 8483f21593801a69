"""Checking a rule pattern (the two backtracking guards) and compiling the active rules once.

Engine choice: patterns run on the `regex` package in VERSION0 mode, which follows the syntax
and semantics of Python's `re` (what curators find documented everywhere) but also takes a
`timeout=` per match. That gives two guards against catastrophic backtracking:

1. static: nested unbounded quantifiers such as ``(a+)+`` or ``(\\w+\\s?)*`` are rejected before
   anything runs (they are the classic exponential shape);
2. dynamic: the pattern runs against adversarial probe strings built from its own literals
   (``"aaaa...!"``), plus a sample of the project's texts, under a per-probe time budget; a
   pattern that exceeds it is rejected with the probe length it choked on.

At export time every match also runs with a timeout: a pattern that still times out on some
row counts as "no match" for that row (logged), so one slow rule can never stall an export.

Keyword rules match the keyword as a whole word, case-insensitively (``increase`` matches
"Increase" but not "increased"); regex rules use `search` (anywhere in the text) and are
case-sensitive unless the pattern says ``(?i)``.
"""

from __future__ import annotations

import logging
import re
import re._parser as sre_parse  # the stdlib parser; used read-only to inspect the pattern tree
from collections.abc import Iterable, Sequence

import regex
from django.conf import settings

from annotations.exceptions import InvalidLabelClass, InvalidRule
from annotations.models import Interaction, Project, Rule
from annotations.rule_matching import (
    RuleMatcher,
    compile_pattern,
    compile_rules,
)

logger = logging.getLogger(__name__)

MAX_PATTERN_LENGTH = 1000
# Per-probe budget at validation time (the per-row budget of matching: rule_matching).
PROBE_TIMEOUT_S = getattr(settings, "DDI_RULE_PROBE_TIMEOUT_S", 0.05)
PROBE_LENGTH = 5000
# A bounded repeat holding another repeat is refused when the product of their upper bounds
# exceeds this ((?:.{1,7}){1,7} is 49 ways to split every stretch; (\d{1,3}\.){3} is 9).
MAX_NESTED_REPEAT_PRODUCT = 16
# regex-only property classes (\p{L}, \P{Lu}, \pL) are replaced by \w before the stdlib parser
# inspects the tree, so they can no longer hide a nested quantifier.
_PROPERTY_CLASS = re.compile(r"\\[pP](?:\{[^}]*\}|[A-Za-z])")


# --- compiling ----------------------------------------------------------------------------------


def _position_hint(pattern: str, pos: int | None) -> str:
    """Where the error is, in words (a marker glyph read as a stray character on the page)."""
    if pos is None:
        return ""
    if pos >= len(pattern):
        return " at the end of the pattern"
    before = f", after '{pattern[max(0, pos - 20) : pos]}'" if pos else ""
    return f" at position {pos} (character '{pattern[pos]}'{before})"


def _walk(items) -> Iterable[tuple]:
    """Yield every (op, args) node of a parsed `re` pattern, depth first."""
    for op, av in items:
        yield op, av
        if op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT):
            yield from _walk(av[2])
        elif op is sre_parse.SUBPATTERN:
            yield from _walk(av[-1])
        elif op is sre_parse.BRANCH:
            for branch in av[1]:
                yield from _walk(branch)
        elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
            yield from _walk(av[1])
        elif op is sre_parse.ATOMIC_GROUP:
            yield from _walk(av)
        elif op is sre_parse.GROUPREF_EXISTS:
            yield from _walk(av[1])
            if av[2] is not None:
                yield from _walk(av[2])


def _is_unbounded_repeat(op, av) -> bool:
    return op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT) and av[1] is sre_parse.MAXREPEAT


def _parse_for_inspection(pattern: str):
    """The stdlib parse tree of the pattern, with regex-only property classes read as \\w.

    Raises InvalidRule when the tree still cannot be built: a pattern the safety check cannot
    inspect is refused rather than trusted (it used to skip the nested-quantifier check).
    """
    try:
        return sre_parse.parse(_PROPERTY_CLASS.sub(r"\\w", pattern))
    except (re.error, RecursionError, OverflowError, ValueError):
        raise InvalidRule(
            "The pattern uses syntax the safety check cannot inspect; use Python re syntax "
            "(\\p{..} property classes are allowed)."
        ) from None


def _is_repeat(op) -> bool:
    return op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT)


def _nested_quantifier(tree) -> bool:
    """True when an unbounded repeat contains another repeat (the (a+)+ shape), or a bounded
    repeat contains one with a product of upper bounds above MAX_NESTED_REPEAT_PRODUCT."""
    for op, av in _walk(tree):
        if not _is_repeat(op) or av[1] in (0, 1):
            continue
        for inner_op, inner_av in _walk(av[2]):
            if not _is_repeat(inner_op) or inner_av[1] in (0, 1):
                continue
            if av[1] is sre_parse.MAXREPEAT or inner_av[1] is sre_parse.MAXREPEAT:
                if av[1] is sre_parse.MAXREPEAT or av[1] > 3:
                    return True
                continue
            if av[1] * inner_av[1] > MAX_NESTED_REPEAT_PRODUCT:
                return True
    return False


def _tree_literals(tree) -> list[str]:
    """The literal characters of a parse tree, in order of appearance (comments carry none)."""
    chars: list[str] = []
    for op, av in _walk(tree):
        if op is sre_parse.LITERAL:
            chars.append(chr(av))
        elif op is sre_parse.IN:
            for item_op, item_av in av:
                if item_op is sre_parse.LITERAL:
                    chars.append(chr(item_av))
                elif item_op is sre_parse.RANGE:
                    chars.extend({chr(item_av[0]), chr(item_av[1])})
    return chars


def _probe_alphabet(pattern: str, tree=None) -> list[str]:
    """Characters worth repeating at the pattern: its literals (from the parse tree, so a
    (?#...) comment cannot push them out) plus one of each common class."""
    chars = dict.fromkeys(["a", "1", " ", "_", "A", ".", "\t", "\n", "~", "e"])
    literals = _tree_literals(tree) if tree is not None else list(pattern)
    chars.update(dict.fromkeys(c for c in literals if c.isprintable() or c in "\t\n"))
    return list(chars)[:64]


def _probes(pattern: str, tree=None) -> Iterable[str]:
    alphabet = _probe_alphabet(pattern, tree)
    tails = ("!", "\x00", "")
    for char in alphabet:
        for tail in tails:
            yield char * PROBE_LENGTH + tail
    yield "".join(alphabet) * (PROBE_LENGTH // max(len(alphabet), 1)) + "!"
    yield "DRUG_A " * (PROBE_LENGTH // 7) + "!"


def validate_pattern(*, kind: str, pattern: str, samples: Sequence[str] = ()) -> regex.Pattern:
    """Compile a rule pattern or raise InvalidRule with a message a curator can act on.

    No side effects; safe to call any number of times. Takes well under a second for sane
    patterns (each probe has a PROBE_TIMEOUT_S budget).
    """
    if kind not in Rule.Kind.values:
        raise InvalidRule(f"Unknown rule kind {kind!r}; use one of {', '.join(Rule.Kind.values)}.")
    if not pattern or not pattern.strip():
        raise InvalidRule("The pattern is empty.")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidRule(
            f"The pattern is {len(pattern)} characters; the limit is {MAX_PATTERN_LENGTH}."
        )
    try:
        compiled = compile_pattern(kind, pattern)
    except regex.error as exc:
        raise InvalidRule(
            f"Invalid regular expression: {exc.msg}"
            f"{'' if 'end of pattern' in exc.msg else _position_hint(pattern, exc.pos)}"
        ) from None
    except (RecursionError, OverflowError, ValueError) as exc:
        raise InvalidRule(f"Invalid regular expression: {exc}") from None
    if kind == Rule.Kind.REGEX:
        if compiled.search("") is not None:
            raise InvalidRule("The pattern matches the empty string, so it would match every text.")
        tree = _parse_for_inspection(pattern)
        if _nested_quantifier(tree):
            raise InvalidRule(
                "Nested quantifiers such as (a+)+, (\\w+\\s?)* or (.{1,7}){1,7} can take "
                "exponential time (catastrophic backtracking); rewrite the pattern without a "
                "repeat inside a repeat."
            )
        for probe in (*_probes(pattern, tree), *samples):
            try:
                compiled.search(probe, timeout=PROBE_TIMEOUT_S)
            except TimeoutError:
                raise InvalidRule(
                    f"The pattern took more than {PROBE_TIMEOUT_S * 1000:.0f} ms on a "
                    f"{len(probe)}-character text (catastrophic backtracking); simplify it, "
                    "e.g. avoid overlapping alternatives inside a repeat like (a|aa)+."
                ) from None
    return compiled


def get_rule_matcher(*, project: Project) -> RuleMatcher:
    """The project's active rules, compiled."""
    return compile_rules(Rule.objects.filter(project=project, is_active=True))


# --- preview -----------------------------------------------------------------------------------


# --- writes ------------------------------------------------------------------------------------


def check_class(project: Project, label_class: str) -> None:
    if label_class not in project.label_classes:
        raise InvalidLabelClass(
            f"{label_class!r} is not a class of {project.name}; "
            f"use one of: {', '.join(project.label_classes)}."
        )


def sample_texts(project: Project, field: str) -> list[str]:
    column = "blinded_text" if field == Rule.Field.BLINDED else "description"
    return list(
        Interaction.objects.filter(project=project)
        .order_by("id")
        .values_list(column, flat=True)[:20]
    )
