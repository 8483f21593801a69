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
from django.db.models import Count, Min

from annotations.exceptions import InvalidLabelClass, InvalidRule
from annotations.models import Interaction, ModelVersion, Prediction, Project, Rule

logger = logging.getLogger(__name__)

MAX_PATTERN_LENGTH = 1000
# Per-probe budget at validation time; per-row budget at export time.
PROBE_TIMEOUT_S = getattr(settings, "DDI_RULE_PROBE_TIMEOUT_S", 0.05)
MATCH_TIMEOUT_S = getattr(settings, "DDI_RULE_MATCH_TIMEOUT_S", 0.05)
PROBE_LENGTH = 5000
PREVIEW_EXAMPLES = 5


# --- compiling ----------------------------------------------------------------------------------


def _position_hint(pattern: str, pos: int | None) -> str:
    if pos is None:
        return ""
    return f" at position {pos}: {pattern[:pos]}\u25b6{pattern[pos:]}"


def _compile(kind: str, pattern: str) -> regex.Pattern:
    if kind == Rule.Kind.KEYWORD:
        # Whole word, case-insensitive; lookarounds instead of \b so "co-trimoxazole" works.
        return regex.compile(rf"(?<!\w){regex.escape(pattern.strip())}(?!\w)", regex.I | regex.V0)
    return regex.compile(pattern, regex.V0)


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


def _nested_quantifier(pattern: str) -> bool:
    """True when an unbounded repeat contains another repeat (the (a+)+ shape)."""
    try:
        tree = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        # Syntax only `regex` knows (e.g. \p{L}): the dynamic probes still guard it.
        return False
    for op, av in _walk(tree):
        if _is_unbounded_repeat(op, av):
            for inner_op, inner_av in _walk(av[2]):
                if inner_op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT) and (
                    inner_av[1] is sre_parse.MAXREPEAT or inner_av[1] > 1
                ):
                    return True
    return False


def _probe_alphabet(pattern: str) -> list[str]:
    """Characters worth repeating at the pattern: its literals plus one of each common class."""
    chars = {"a", "1", " ", "_", "A", ".", "\t", "\n"}
    chars.update(c for c in pattern if c.isprintable() and c not in "()[]{}|*+?^$\\")
    return sorted(chars)[:40]


def _probes(pattern: str) -> Iterable[str]:
    alphabet = _probe_alphabet(pattern)
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
        compiled = _compile(kind, pattern)
    except regex.error as exc:
        raise InvalidRule(
            f"Invalid regular expression: {exc.msg}{_position_hint(pattern, exc.pos)}"
        ) from None
    except (RecursionError, OverflowError, ValueError) as exc:
        raise InvalidRule(f"Invalid regular expression: {exc}") from None
    if kind == Rule.Kind.REGEX:
        if compiled.search("") is not None:
            raise InvalidRule("The pattern matches the empty string, so it would match every text.")
        if _nested_quantifier(pattern):
            raise InvalidRule(
                "Nested quantifiers such as (a+)+ or (\\w+\\s?)* can take exponential time "
                "(catastrophic backtracking); rewrite the pattern without a repeat inside a repeat."
            )
        for probe in (*_probes(pattern), *samples):
            try:
                compiled.search(probe, timeout=PROBE_TIMEOUT_S)
            except TimeoutError:
                raise InvalidRule(
                    f"The pattern took more than {PROBE_TIMEOUT_S * 1000:.0f} ms on a "
                    f"{len(probe)}-character text (catastrophic backtracking); simplify it, "
                    "e.g. avoid overlapping alternatives inside a repeat like (a|aa)+."
                ) from None
    return compiled


# --- matching ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: int | None
    field: str
    label_class: str
    priority: int
    pattern: regex.Pattern

    def matches(self, text: str) -> bool:
        try:
            return self.pattern.search(text, timeout=MATCH_TIMEOUT_S) is not None
        except TimeoutError:
            logger.warning("rule %s timed out on a %d-character text", self.id, len(text))
            return False


@dataclass
class RuleMatcher:
    """The active rules of a project, compiled once, in precedence order (priority desc, id).

    Blinded-text results are cached per pattern_hash: DrugBank repeats a few dozen sentence
    patterns, so a million-row export evaluates each blinded rule a few dozen times.
    """

    rules: list[CompiledRule]
    _cache: dict[str, CompiledRule | None] = field(default_factory=dict)
    max_cache: int = 100_000

    @property
    def has_raw_rules(self) -> bool:
        return any(r.field == Rule.Field.RAW for r in self.rules)

    def first_match(
        self, *, blinded_text: str, pattern_hash: str, description: str
    ) -> CompiledRule | None:
        if not self.rules:
            return None
        if not self.has_raw_rules:
            if pattern_hash in self._cache:
                return self._cache[pattern_hash]
            hit = self._first(blinded_text, description)
            if len(self._cache) < self.max_cache:
                self._cache[pattern_hash] = hit
            return hit
        return self._first(blinded_text, description)

    def _first(self, blinded_text: str, description: str) -> CompiledRule | None:
        for rule in self.rules:
            text = blinded_text if rule.field == Rule.Field.BLINDED else description
            if rule.matches(text):
                return rule
        return None


def compile_rules(rules: Iterable[Rule]) -> RuleMatcher:
    """Compile rules (already validated on save) into a matcher; invalid ones are skipped+logged."""
    compiled = []
    for rule in sorted(rules, key=lambda r: (-r.priority, r.id or 0)):
        try:
            pattern = _compile(rule.kind, rule.pattern)
        except regex.error:
            logger.error("rule %s has an invalid pattern; skipped", rule.id)
            continue
        compiled.append(CompiledRule(rule.id, rule.field, rule.label_class, rule.priority, pattern))
    return RuleMatcher(compiled)


def get_rule_matcher(*, project: Project) -> RuleMatcher:
    """The project's active rules, compiled."""
    return compile_rules(Rule.objects.filter(project=project, is_active=True))


# --- preview -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RulePreview:
    matches: int
    disagreements: int
    model_version: int | None
    examples: list[str]


def _active_model_version(project: Project) -> ModelVersion | None:
    return ModelVersion.objects.filter(project=project, is_active=True).first()


def preview_rule(
    *, project: Project, kind: str, field: str, pattern: str, label_class: str
) -> RulePreview:
    """How many interactions the rule matches, and how many of those the active model labels
    differently. Read-only. Validates first (raises InvalidRule / InvalidLabelClass).

    Blinded rules are matched once per distinct sentence pattern (GROUP BY pattern_hash), then
    rows are counted per pattern in SQL; raw rules scan the descriptions in id order.
    """
    _check_class(project, label_class)
    compiled = validate_pattern(kind=kind, pattern=pattern)
    rule = CompiledRule(None, field, label_class, 0, compiled)
    model_version = _active_model_version(project)
    interactions = Interaction.objects.filter(project=project)
    examples: list[str] = []
    if field == Rule.Field.BLINDED:
        groups = (
            interactions.values("pattern_hash")
            .annotate(n=Count("id"), text=Min("blinded_text"))
            .order_by("pattern_hash")
        )
        hashes, matches = [], 0
        for group in groups.iterator(chunk_size=2000):
            if rule.matches(group["text"]):
                hashes.append(group["pattern_hash"])
                matches += group["n"]
                if len(examples) < PREVIEW_EXAMPLES:
                    examples.append(group["text"])
        matched = interactions.filter(pattern_hash__in=hashes)
    else:
        ids, last_id = [], 0
        while True:
            batch = list(
                interactions.filter(id__gt=last_id)
                .order_by("id")
                .values_list("id", "description")[:5000]
            )
            if not batch:
                break
            last_id = batch[-1][0]
            for pk, text in batch:
                if rule.matches(text):
                    ids.append(pk)
                    if len(examples) < PREVIEW_EXAMPLES:
                        examples.append(text)
        matches = len(ids)
        matched = interactions.filter(id__in=ids)
    disagreements = 0
    if model_version is not None and matches:
        disagreements = (
            Prediction.objects.filter(model_version=model_version, interaction__in=matched)
            .exclude(predicted_class=label_class)
            .count()
        )
    return RulePreview(
        matches=matches,
        disagreements=disagreements,
        model_version=model_version.number if model_version else None,
        examples=examples,
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
    _validate(project, kind=kind, field=field, pattern=pattern, label_class=label_class)
    return Rule.objects.create(
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


_UPDATABLE = ("name", "kind", "field", "pattern", "label_class", "priority", "is_active")


def update_rule(*, rule: Rule, user: AbstractBaseUser | None = None, **changes) -> Rule:
    """Validate and apply changes to a rule (only the fields in _UPDATABLE). Safe to repeat."""
    unknown = set(changes) - set(_UPDATABLE)
    if unknown:
        raise InvalidRule(f"Cannot change {', '.join(sorted(unknown))} of a rule.")
    with transaction.atomic():
        rule = Rule.objects.select_for_update().select_related("project").get(pk=rule.pk)
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
        rule.save()
    return rule


def delete_rule(*, rule: Rule, user: AbstractBaseUser | None = None) -> None:
    """Delete a rule; exports resolve without it from now on. Safe to repeat."""
    Rule.objects.filter(pk=rule.pk).delete()
