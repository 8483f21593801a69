"""The rule matcher: compile a project's rules once and find the first that matches a text.

Pure domain code below both the reads and the writes: services.rules validates and saves rules,
annotations.rule_matches stores their matches, and the final-label order reads those. Patterns
run on the `regex` package in VERSION0 mode (Python `re` semantics plus a per-match timeout):
a match that times out counts as "no match" for that row (logged), so one slow rule can never
stall an export.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import regex
from django.conf import settings

from annotations.models import Rule

logger = logging.getLogger(__name__)

# Per-row budget of one match.
MATCH_TIMEOUT_S = getattr(settings, "DDI_RULE_MATCH_TIMEOUT_S", 0.05)
# Cost guard per matcher (one request, one export): a rule whose cumulative matching time
# exceeds max(RULE_COST_GRACE_S, evaluations x RULE_MAX_MS_PER_ROW) is cut off for the rest of
# that matcher (counted as "no match", logged). Sane rules cost microseconds per row and never
# trip it; a costly one stops after a fraction of a second whatever the number of rows.
RULE_MAX_MS_PER_ROW = getattr(settings, "DDI_RULE_MAX_MS_PER_ROW", 0.5)
RULE_COST_GRACE_S = getattr(settings, "DDI_RULE_COST_GRACE_S", 0.25)


def compile_pattern(kind: str, pattern: str) -> regex.Pattern:
    """The engine object of a pattern (raises regex.error; validation is services.rules')."""
    if kind == Rule.Kind.KEYWORD:
        # Whole word, case-insensitive; lookarounds instead of \b so "co-trimoxazole" works.
        return regex.compile(rf"(?<!\w){regex.escape(pattern.strip())}(?!\w)", regex.I | regex.V0)
    return regex.compile(pattern, regex.V0)


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
    # Cost guard: [seconds, evaluations] per rule index, and the indexes cut off.
    _costs: dict[int, list] = field(default_factory=dict)
    cut_off: set[int] = field(default_factory=set)

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
        for index, rule in enumerate(self.rules):
            if index in self.cut_off:
                continue
            text = blinded_text if rule.field == Rule.Field.BLINDED else description
            if self._timed_match(index, rule, text):
                return rule
        return None

    def _timed_match(self, index: int, rule: CompiledRule, text: str) -> bool:
        # CPU time of this thread: a process descheduled on a busy machine does not count, so
        # a sane rule is never cut off by load (exports stay reproducible).
        started = time.thread_time()
        hit = rule.matches(text)
        cost = self._costs.setdefault(index, [0.0, 0])
        cost[0] += time.thread_time() - started
        cost[1] += 1
        if cost[0] > max(RULE_COST_GRACE_S, cost[1] * RULE_MAX_MS_PER_ROW / 1000):
            self.cut_off.add(index)
            logger.warning(
                "rule %s cut off after %d rows (%.2f s): over its cost budget of %.2f ms a row",
                rule.id,
                cost[1],
                cost[0],
                RULE_MAX_MS_PER_ROW,
            )
        return hit


def compile_rules(rules: Iterable[Rule]) -> RuleMatcher:
    """Compile rules (already validated on save) into a matcher; invalid ones are skipped+logged."""
    compiled = []
    for rule in sorted(rules, key=lambda r: (-r.priority, r.id or 0)):
        try:
            pattern = compile_pattern(rule.kind, rule.pattern)
        except regex.error:
            logger.error("rule %s has an invalid pattern; skipped", rule.id)
            continue
        compiled.append(CompiledRule(rule.id, rule.field, rule.label_class, rule.priority, pattern))
    return RuleMatcher(compiled)
