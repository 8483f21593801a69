"""Creating, updating and deleting rules (validated, capped per project, matches kept current)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotations import rule_matches
from annotations.exceptions import InvalidRule
from annotations.models import Project, Rule
from annotations.services.rules.patterns import (
    check_class,
    sample_texts,
    validate_pattern,
)

MAX_RULES_PER_PROJECT = getattr(settings, "DDI_MAX_RULES_PER_PROJECT", 50)


def _validate(project: Project, *, kind: str, field: str, pattern: str, label_class: str) -> None:
    if field not in Rule.Field.values:
        raise InvalidRule(f"Unknown field {field!r}; use one of {', '.join(Rule.Field.values)}.")
    check_class(project, label_class)
    validate_pattern(kind=kind, pattern=pattern, samples=sample_texts(project, field))


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
