"""Curator rules: validate a pattern, compile the active rules once, preview, create and update.

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
from dataclasses import dataclass, field

import regex
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Min, OuterRef, Q, Subquery

from annotations import rule_matches
from annotations.exceptions import InvalidLabelClass, InvalidRule
from annotations.models import Interaction, ModelVersion, Prediction, Project, Rule
from annotations.rule_matching import (
    RULE_MAX_MS_PER_ROW,
    CompiledRule,
    RuleMatcher,
    compile_pattern,
    compile_rules,
)

logger = logging.getLogger(__name__)

MAX_PATTERN_LENGTH = 1000
# Per-probe budget at validation time (the per-row budget of matching: rule_matching).
PROBE_TIMEOUT_S = getattr(settings, "DDI_RULE_PROBE_TIMEOUT_S", 0.05)
PROBE_LENGTH = 5000
PREVIEW_EXAMPLES = 5
MAX_RULES_PER_PROJECT = getattr(settings, "DDI_MAX_RULES_PER_PROJECT", 50)
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


PREVIEW_PAGE_SIZE = 10


@dataclass(frozen=True)
class PreviewMatch:
    """One matched interaction on the preview page, with the active version's class."""

    interaction_id: int
    drug_a: str
    drug_b: str
    text: str  # the text the rule reads (blinded or raw)
    predicted_class: str | None


@dataclass(frozen=True)
class RulePreview:
    matches: int
    disagreements: int
    model_version: int | None
    examples: list[str]
    rows: list[PreviewMatch] = field(default_factory=list)  # this page of the matches
    page: int = 1
    page_size: int = PREVIEW_PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, -(-self.matches // self.page_size))

    @property
    def first_shown(self) -> int:
        return (self.page - 1) * self.page_size + 1 if self.rows else 0

    @property
    def last_shown(self) -> int:
        return self.first_shown + len(self.rows) - 1 if self.rows else 0


def preview_rule(
    *,
    project: Project,
    kind: str,
    field: str,
    pattern: str,
    label_class: str,
    page: int = 1,
    page_size: int = PREVIEW_PAGE_SIZE,
) -> RulePreview:
    """How many interactions the rule matches, and how many of those the active model labels
    differently. Read-only. Validates first, on the project's own texts as saving does (raises
    InvalidRule / InvalidLabelClass), then scans under the same cost guard as exports: a rule
    that goes over it is refused with InvalidRule instead of being counted.

    Blinded rules are matched once per distinct sentence pattern (GROUP BY pattern_hash) with
    their rows and disagreements counted in SQL; raw rules scan the descriptions in id order
    with each row's prediction alongside. No id lists are built (they fail past SQLite's
    variable limit on large projects). `rows` is page `page` of the matches (blinded: by
    sentence pattern, then id; raw: by id), each with the active version's class.
    """
    _check_class(project, label_class)
    page = max(1, page)
    start, end = (page - 1) * page_size, page * page_size
    if field not in Rule.Field.values:
        raise InvalidRule(f"Unknown field {field!r}; use one of {', '.join(Rule.Field.values)}.")
    compiled = validate_pattern(kind=kind, pattern=pattern, samples=_sample_texts(project, field))
    matcher = RuleMatcher([CompiledRule(None, field, label_class, 0, compiled)])
    model_version = ModelVersion.objects.active_for(project)
    interactions = Interaction.objects.filter(project=project)
    examples: list[str] = []
    matches = disagreements = 0
    if field == Rule.Field.BLINDED:
        disagree = Q(predictions__model_version=model_version) & ~Q(
            predictions__predicted_class=label_class
        )
        groups = (
            interactions.values("pattern_hash")
            .annotate(
                n=Count("id", distinct=True),
                text=Min("blinded_text"),
                disagree=Count("predictions", filter=disagree),
            )
            .order_by("pattern_hash")
        )
        windows: list[tuple[str, int, int]] = []  # (pattern_hash, skip, take) on this page
        for group in groups.iterator(chunk_size=2000):
            if matcher.first_match(
                blinded_text=group["text"], pattern_hash=group["pattern_hash"], description=""
            ):
                skip = max(0, start - matches)
                take = min(group["n"], end - matches) - skip
                if take > 0:
                    windows.append((group["pattern_hash"], skip, take))
                matches += group["n"]
                disagreements += group["disagree"]
                if len(examples) < PREVIEW_EXAMPLES:
                    examples.append(group["text"])
            _refuse_if_cut_off(matcher)
        rows = _preview_rows(interactions, model_version, windows)
    else:
        predicted = Prediction.objects.filter(
            interaction=OuterRef("pk"), model_version=model_version
        ).values("predicted_class")[:1]
        last_id = 0
        rows = []
        while True:
            batch = list(
                interactions.filter(id__gt=last_id)
                .annotate(predicted=Subquery(predicted))
                .order_by("id")
                .values_list("id", "description", "predicted", "drug_a", "drug_b")[:5000]
            )
            if not batch:
                break
            last_id = batch[-1][0]
            for pk, text, predicted_class, drug_a, drug_b in batch:
                if matcher.first_match(blinded_text="", pattern_hash="", description=text):
                    if start <= matches < end:
                        rows.append(PreviewMatch(pk, drug_a, drug_b, text, predicted_class))
                    matches += 1
                    if predicted_class is not None and predicted_class != label_class:
                        disagreements += 1
                    if len(examples) < PREVIEW_EXAMPLES:
                        examples.append(text)
                _refuse_if_cut_off(matcher)
    if model_version is None:
        disagreements = 0
    return RulePreview(
        matches=matches,
        disagreements=disagreements,
        model_version=model_version.number if model_version else None,
        examples=examples,
        rows=rows,
        page=page,
        page_size=page_size,
    )


def _preview_rows(interactions, model_version, windows) -> list[PreviewMatch]:
    """The page's matched rows of a blinded rule: at most page_size rows over a few patterns."""
    predicted = Prediction.objects.filter(
        interaction=OuterRef("pk"), model_version=model_version
    ).values("predicted_class")[:1]
    rows: list[PreviewMatch] = []
    for pattern_hash, skip, take in windows:
        found = (
            interactions.filter(pattern_hash=pattern_hash)
            .annotate(predicted=Subquery(predicted))
            .order_by("id")
            .values_list("id", "drug_a", "drug_b", "blinded_text", "predicted")[skip : skip + take]
        )
        rows.extend(PreviewMatch(*values) for values in found)
    return rows


def _refuse_if_cut_off(matcher: RuleMatcher) -> None:
    if matcher.cut_off:
        raise InvalidRule(
            f"The pattern costs more than {RULE_MAX_MS_PER_ROW} ms a row on this project's "
            "texts, so exports and the review queue would skip it; simplify it."
        )


# --- writes ------------------------------------------------------------------------------------


def _check_class(project: Project, label_class: str) -> None:
    if label_class not in project.label_classes:
        raise InvalidLabelClass(
            f"{label_class!r} is not a class of {project.name}; "
            f"use one of: {', '.join(project.label_classes)}."
        )


def _sample_texts(project: Project, field: str) -> list[str]:
    column = "blinded_text" if field == Rule.Field.BLINDED else "description"
    return list(
        Interaction.objects.filter(project=project)
        .order_by("id")
        .values_list(column, flat=True)[:20]
    )


def _validate(project: Project, *, kind: str, field: str, pattern: str, label_class: str) -> None:
    if field not in Rule.Field.values:
        raise InvalidRule(f"Unknown field {field!r}; use one of {', '.join(Rule.Field.values)}.")
    _check_class(project, label_class)
    validate_pattern(kind=kind, pattern=pattern, samples=_sample_texts(project, field))


def create_rule(
    *,
    project: Project,
    user: AbstractBaseUser | None,
    name: str,
    pattern: str,
    label_class: str,
    kind: str = Rule.Kind.REGEX,
    field: str = Rule.Field.BLINDED,
    priority: int = 0,
    is_active: bool = True,
) -> Rule:
    """Validate and save a new rule. Raises InvalidRule / InvalidLabelClass; each call creates
    a new row (not idempotent)."""
    if Rule.objects.filter(project=project).count() >= MAX_RULES_PER_PROJECT:
        raise InvalidRule(
            f"{project.name} already has {MAX_RULES_PER_PROJECT} rules, the limit; delete or "
            "edit one instead."
        )
    _validate(project, kind=kind, field=field, pattern=pattern, label_class=label_class)
    with transaction.atomic():
        rule = Rule.objects.create(
            project=project,
            name=name.strip() or pattern[:200],
            kind=kind,
            field=field,
            pattern=pattern,
            label_class=label_class,
            priority=priority,
            is_active=is_active,
            created_by=user,
        )
        rule_matches.refresh_rule_matches(rule=rule)
    return rule


_UPDATABLE = ("name", "kind", "field", "pattern", "label_class", "priority", "is_active")
_MATCHING = ("kind", "field", "pattern")  # what the stored matches depend on


def update_rule(*, rule: Rule, user: AbstractBaseUser | None = None, **changes) -> Rule:
    """Validate and apply changes to a rule (only the fields in _UPDATABLE). Safe to repeat.

    A change of pattern, kind or field recomputes the rule's stored matches in the same
    transaction (as does re-activating a rule that missed rows while inactive)."""
    unknown = set(changes) - set(_UPDATABLE)
    if unknown:
        raise InvalidRule(f"Cannot change {', '.join(sorted(unknown))} of a rule.")
    with transaction.atomic():
        rule = Rule.objects.select_for_update().select_related("project").get(pk=rule.pk)
        before = Rule(**{name: getattr(rule, name) for name in (*_MATCHING, "is_active")})
        for name, value in changes.items():
            setattr(rule, name, value)
        rule.name = rule.name.strip() or rule.pattern[:200]
        _validate(
            rule.project,
            kind=rule.kind,
            field=rule.field,
            pattern=rule.pattern,
            label_class=rule.label_class,
        )
        rematch = any(
            changes.get(name, getattr(before, name)) != getattr(before, name) for name in _MATCHING
        )
        rule.save()
        if rematch or (rule.is_active and not before.is_active):
            rule_matches.refresh_rule_matches(rule=rule)
    return rule


def delete_rule(*, rule: Rule, user: AbstractBaseUser | None = None) -> None:
    """Delete a rule (its stored matches go with it, ON DELETE CASCADE); exports resolve
    without it from now on. Safe to repeat."""
    Rule.objects.filter(pk=rule.pk).delete()
