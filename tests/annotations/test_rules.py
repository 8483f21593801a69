"""Rules: validation (syntax with position, catastrophic backtracking), preview, writes, and the
rule-vs-model disagreement selector the review queue uses."""

from __future__ import annotations

import time

import pytest

from annotations.exceptions import InvalidLabelClass, InvalidRule
from annotations.models import Rule
from annotations.selectors.rules import interactions_disagreeing_with_rules
from annotations.services.rules import (
    create_rule,
    preview_rule,
    update_rule,
    validate_pattern,
)
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory

pytestmark = pytest.mark.django_db

INCREASE = "DRUG_A may increase the anticoagulant activities of DRUG_B."
DECREASE = "DRUG_A can decrease the serum concentration of DRUG_B."


def _rows(project, version, blinded, predicted, n):
    rows = []
    for _ in range(n):
        interaction = InteractionFactory(project=project, blinded_text=blinded)
        PredictionFactory(interaction=interaction, model_version=version, predicted_class=predicted)
        rows.append(interaction)
    return rows


def test_an_invalid_regex_is_rejected_with_its_position():
    with pytest.raises(
        InvalidRule, match=r"multiple repeat at position 9 \(character '\*', after 'increase\*'\)"
    ):
        validate_pattern(kind="regex", pattern="increase**s")
    # Issue 13: an error at the very end used to end in a lone "▶" marker.
    with pytest.raises(InvalidRule, match=r"missing \) at the end of the pattern"):
        validate_pattern(kind="regex", pattern="increase(s")
    with pytest.raises(
        InvalidRule, match=r"^Invalid regular expression: bad escape \(end of pattern\)$"
    ):
        validate_pattern(kind="regex", pattern="increase\\")
    with pytest.raises(InvalidRule) as error:
        validate_pattern(kind="regex", pattern="(")
    assert "▶" not in str(error.value) and "at the end of the pattern" in str(error.value)


@pytest.mark.parametrize("pattern", [r"(a+)+b", r"(\w+\s?)*x$", r"(?:x*)*y", r"((ab)*c)+"])
def test_nested_quantifiers_are_rejected_before_running(pattern):
    with pytest.raises(InvalidRule, match="Nested quantifiers"):
        validate_pattern(kind="regex", pattern=pattern)


def test_a_pattern_that_backtracks_on_a_probe_is_rejected_quickly():
    started = time.monotonic()
    with pytest.raises(InvalidRule, match="catastrophic backtracking"):
        validate_pattern(kind="regex", pattern=r"(a|aa)+$")
    assert time.monotonic() - started < 5


def test_patterns_matching_the_empty_string_are_rejected():
    with pytest.raises(InvalidRule, match="empty string"):
        validate_pattern(kind="regex", pattern=r"x?")


def test_ordinary_patterns_and_keywords_pass_validation():
    assert validate_pattern(kind="regex", pattern=r"\b(increase|decrease)s?\b the (serum )?level")
    keyword = validate_pattern(kind="keyword", pattern="Increase")
    assert keyword.search("may increase the")
    assert not keyword.search("increased")


def test_preview_counts_matches_and_model_disagreements(project):
    version = ModelVersionFactory(project=project, is_active=True)
    _rows(project, version, DECREASE, "Antagonistic", 3)
    _rows(project, version, DECREASE, "Synergistic", 2)
    _rows(project, version, INCREASE, "Synergistic", 4)

    preview = preview_rule(
        project=project,
        kind="regex",
        field="blinded",
        pattern=r"\bdecrease\b",
        label_class="Antagonistic",
    )

    assert (preview.matches, preview.disagreements, preview.model_version) == (5, 2, version.number)
    assert preview.examples == [DECREASE]


def test_preview_of_a_raw_text_rule_matches_drug_names(project):
    version = ModelVersionFactory(project=project, is_active=True)
    InteractionFactory(project=project, drug_a="Aspirin")
    asp = InteractionFactory(project=project, drug_b="aspirin")
    PredictionFactory(interaction=asp, model_version=version, predicted_class="Synergistic")

    preview = preview_rule(
        project=project, kind="keyword", field="raw", pattern="ASPIRIN", label_class="Antagonistic"
    )

    assert (preview.matches, preview.disagreements) == (2, 1)


def test_create_rule_rejects_unknown_classes_and_saves_valid_rules(project, curator_carl):
    with pytest.raises(InvalidLabelClass, match="use one of: Synergistic, Antagonistic"):
        create_rule(
            project=project, user=curator_carl, name="x", pattern="inc", label_class="Additive"
        )

    rule = create_rule(
        project=project,
        user=curator_carl,
        name="",
        pattern="increase",
        label_class="Synergistic",
        priority=3,
    )

    assert (rule.name, rule.priority, rule.created_by) == ("increase", 3, curator_carl)


def test_update_rule_validates_the_new_pattern_and_keeps_the_old_one_on_error(
    project, curator_carl
):
    rule = create_rule(
        project=project, user=curator_carl, name="r", pattern="increase", label_class="Synergistic"
    )

    with pytest.raises(InvalidRule):
        update_rule(rule=rule, pattern="(a+)+")
    rule.refresh_from_db()
    assert rule.pattern == "increase"

    update_rule(rule=rule, pattern="decrease", label_class="Antagonistic", priority=2)
    rule.refresh_from_db()
    assert (rule.pattern, rule.label_class, rule.priority) == ("decrease", "Antagonistic", 2)


def test_disagreement_selector_lists_rows_where_the_winning_rule_and_model_differ(project):
    version = ModelVersionFactory(project=project, is_active=True)
    agree = _rows(project, version, DECREASE, "Antagonistic", 2)
    disagree = _rows(project, version, DECREASE, "Synergistic", 2)
    _rows(project, version, INCREASE, "Synergistic", 2)
    Rule.objects.create(project=project, name="dec", pattern="decrease", label_class="Antagonistic")

    found = list(interactions_disagreeing_with_rules(project=project, model_version=version))

    assert found == disagree
    assert not set(found) & set(agree)


def test_disagreement_selector_handles_raw_rules_priorities_and_no_model(project):
    version = ModelVersionFactory(project=project, is_active=True)
    rows = _rows(project, version, INCREASE, "Synergistic", 3)
    Rule.objects.create(
        project=project, name="all", pattern="DRUG_A", label_class="Synergistic", priority=1
    )
    Rule.objects.create(
        project=project,
        name="one drug",
        kind="keyword",
        field="raw",
        pattern=rows[1].drug_a,
        label_class="Antagonistic",
        priority=5,
    )

    assert list(interactions_disagreeing_with_rules(project=project, model_version=version)) == [
        rows[1]
    ]
    assert not interactions_disagreeing_with_rules(project=project, model_version=None).exists()


def test_preview_pages_list_each_match_with_the_active_versions_class(project):
    version = ModelVersionFactory(project=project, is_active=True)
    dec = _rows(project, version, DECREASE, "Antagonistic", 3)
    dec += _rows(project, version, DECREASE, "Synergistic", 2)
    _rows(project, version, INCREASE, "Synergistic", 4)
    pages = [
        preview_rule(
            project=project,
            kind="regex",
            field="blinded",
            pattern=r"\bdecrease\b",
            label_class="Antagonistic",
            page=page,
            page_size=2,
        )
        for page in (1, 2, 3)
    ]
    listed = [(row.interaction_id, row.predicted_class) for p in pages for row in p.rows]
    assert listed == [
        (i.pk, c) for i, c in zip(dec, ["Antagonistic"] * 3 + ["Synergistic"] * 2, strict=True)
    ]
    assert [p.pages for p in pages] == [3, 3, 3] and pages[2].first_shown == 5


def test_raw_preview_pages_follow_id_order(project):
    version = ModelVersionFactory(project=project, is_active=True)
    rows = [InteractionFactory(project=project, drug_a=f"Aspirin{i}") for i in range(5)]
    PredictionFactory(interaction=rows[3], model_version=version, predicted_class="Synergistic")
    second = preview_rule(
        project=project,
        kind="regex",
        field="raw",
        pattern="Aspirin",
        label_class="Antagonistic",
        page=2,
        page_size=3,
    )
    assert [(r.interaction_id, r.predicted_class) for r in second.rows] == [
        (rows[3].pk, "Synergistic"),
        (rows[4].pk, None),
    ]
