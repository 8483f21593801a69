"""Curator rules: patterns.py checks a pattern (the backtracking guards) and compiles the active
rules once, preview.py shows a rule's matches before it is saved, writes.py creates, updates and
deletes rules. Matching itself is pure domain code (annotations.rule_matching).
"""

from annotations.services.rules.patterns import (
    MAX_PATTERN_LENGTH,
    get_rule_matcher,
    validate_pattern,
)
from annotations.services.rules.preview import (
    PREVIEW_PAGE_SIZE,
    PreviewMatch,
    RulePreview,
    preview_rule,
)
from annotations.services.rules.writes import (
    MAX_RULES_PER_PROJECT,
    create_rule,
    delete_rule,
    update_rule,
)

__all__ = [
    "MAX_PATTERN_LENGTH",
    "MAX_RULES_PER_PROJECT",
    "PREVIEW_PAGE_SIZE",
    "PreviewMatch",
    "RulePreview",
    "create_rule",
    "delete_rule",
    "get_rule_matcher",
    "preview_rule",
    "update_rule",
    "validate_pattern",
]
