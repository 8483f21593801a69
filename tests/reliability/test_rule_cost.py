"""Issue 18, point 1: user-written rules cannot be made arbitrarily expensive.

The guard bypasses (a \\p{..} class skipping the nested-quantifier check, a (?#...) comment
pushing the pattern's letters out of the probe alphabet) are closed, bounded nested repeats
with a large product are refused, a project holds at most DDI_MAX_RULES_PER_PROJECT rules,
preview runs on the project's texts under the cost guard, and costly rules saved before the
guard existed cost the export and the queue filter a bounded time.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import time

import pytest
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from annotations import rule_matching
from annotations.exceptions import InvalidRule
from annotations.models import Interaction, Prediction, Rule
from annotations.selectors.rules import interactions_disagreeing_with_rules
from annotations.services import rules as rule_service
from annotations.services.export import make_filters, stream_export
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db

COSTLY_PREVIEW = r"n\x20(?:.{1,7}){1,7}\x7e"  # 3.32 s for 79 rows in the review
COSTLY_SAVED = r"e\x20(?:.{1,6}){1,6}\x7e"  # accepted (201) ten times in the review


@pytest.mark.parametrize("pattern", [COSTLY_PREVIEW, COSTLY_SAVED, r"(\w+\s?){1,9}x"])
def test_bounded_nested_repeats_with_a_large_product_are_refused(pattern):
    with pytest.raises(InvalidRule, match="Nested quantifiers"):
        rule_service.validate_pattern(kind="regex", pattern=pattern)


def test_ordinary_bounded_repeats_still_pass():
    assert rule_service.validate_pattern(kind="regex", pattern=r"(\d{1,3}\.){3}\d{1,3}")
    assert rule_service.validate_pattern(kind="regex", pattern=r"(?:\w+ ){2}DRUG_B")


@pytest.mark.parametrize("pattern", [r"\p{L}(a+)+b", r"(\p{Lu}+\s?)*x$", r"\pL(?:x*)*y"])
def test_a_property_class_no_longer_skips_the_nested_quantifier_check(pattern):
    with pytest.raises(InvalidRule, match="Nested quantifiers"):
        rule_service.validate_pattern(kind="regex", pattern=pattern)


def test_property_classes_alone_are_still_accepted():
    assert rule_service.validate_pattern(kind="regex", pattern=r"\p{Lu}\p{L}+ may increase")


def test_a_comment_cannot_push_the_letters_out_of_the_probe_alphabet():
    filler = "".join(chr(c) for c in range(0x21, 0x61) if chr(c) not in "()[]{}|*+?^$\\#")
    pattern = f"(?#{filler})(a|aa)+$"
    with pytest.raises(InvalidRule, match="catastrophic backtracking"):
        rule_service.validate_pattern(kind="regex", pattern=pattern)


def test_a_project_holds_at_most_the_configured_number_of_rules(project, curator_carl):
    Rule.objects.bulk_create(
        Rule(project=project, name=f"r{i}", pattern=f"word{i}", label_class="Synergistic")
        for i in range(rule_service.MAX_RULES_PER_PROJECT)
    )
    with pytest.raises(InvalidRule, match="limit"):
        rule_service.create_rule(
            project=project,
            user=curator_carl,
            name="one more",
            pattern="increase",
            label_class="Synergistic",
        )
    assert Rule.objects.filter(project=project).count() == rule_service.MAX_RULES_PER_PROJECT


def test_preview_refuses_the_pattern_the_save_refuses(curator_carl, project):
    client = APIClient()
    client.force_authenticate(curator_carl)
    response = client.post(
        "/api/rules/preview/",
        {
            "project": project.pk,
            "kind": "regex",
            "field": "raw",
            "pattern": COSTLY_PREVIEW,
            "label_class": "Synergistic",
        },
        format="json",
    )
    assert response.status_code == 400
    assert "Nested quantifiers" in str(response.json())


def _costly_rows(project, n):
    version = ModelVersionFactory(project=project, is_active=True)
    text = "The the serum the level the of the drug the one the are the there the here e "
    rows = [
        Interaction(
            project=project,
            drug_a=f"Drugamab{i}",
            drug_b=f"Otherzole{i}",
            description=f"Drugamab{i} {text} Otherzole{i}.",
            blinded_text=f"DRUG_A {text} DRUG_B.",
            pattern_hash=hashlib.sha256(text.encode()).hexdigest(),
            content_hash=hashlib.sha256(str(i).encode()).hexdigest(),
        )
        for i in range(n)
    ]
    Interaction.objects.bulk_create(rows)
    Prediction.objects.bulk_create(
        Prediction(
            interaction=row,
            model_version=version,
            predicted_class="Antagonistic",
            probabilities=[0.4, 0.6],
            margin=0.2,
            confidence=0.6,
        )
        for row in Interaction.objects.filter(project=project)
    )
    # Saved before the guard existed (straight to the table, as old rows would be).
    Rule.objects.bulk_create(
        Rule(
            project=project,
            name=f"slow{i}",
            field="raw",
            pattern=COSTLY_SAVED,
            label_class="Synergistic",
        )
        for i in range(10)
    )
    return version


def test_ten_costly_rules_cost_the_queue_filter_and_the_export_a_bounded_time(project):
    version = _costly_rows(project, 2000)
    single = rule_matching.compile_rules([Rule(id=1, field="raw", pattern=COSTLY_SAVED)])
    started = time.perf_counter()
    single.rules[0].matches(Interaction.objects.first().description)
    per_row = time.perf_counter() - started
    unguarded = per_row * 10 * 2000

    started = time.perf_counter()
    rows = list(interactions_disagreeing_with_rules(project=project, model_version=version))
    queue_s = time.perf_counter() - started

    started = time.perf_counter()
    body = b"".join(
        stream_export(project=project, export_format="csv", filters=make_filters(project=project))
    )
    export_s = time.perf_counter() - started

    budget = 10 * (rule_matching.RULE_COST_GRACE_S + rule_matching.MATCH_TIMEOUT_S) + 5
    assert queue_s < budget, (queue_s, unguarded)
    assert export_s < budget, (export_s, unguarded)
    assert unguarded > 2 * budget  # without the guard this would have taken much longer
    assert body.count(b"\n") == 2001
    assert isinstance(rows, list)


# --- point 9: large match sets ----------------------------------------------------------------


@contextlib.contextmanager
def small_variable_limit():
    """Stand-in for a match set past the database's variable limit: SQLite's is lowered to 500
    (a 250,000-row project does the same against the default limit). PostgreSQL runs the same
    queries at its own limits."""
    if connection.vendor != "sqlite":
        yield
        return
    connection.ensure_connection()
    raw = connection.connection
    before = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 500)
    try:
        yield
    finally:
        raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, before)


@pytest.mark.parametrize("field", ["raw", "blinded"])
def test_a_match_set_past_the_variable_limit_is_not_a_python_id_list(project, field):
    version = ModelVersionFactory(project=project, is_active=True)
    rows = [
        Interaction(
            project=project,
            drug_a=f"A{i}",
            drug_b=f"B{i}",
            description=f"A{i} may increase the effect of B{i}.",
            blinded_text=f"DRUG_A may increase the effect {i} of DRUG_B.",
            pattern_hash=hashlib.sha256(f"p{i}".encode()).hexdigest(),
            content_hash=hashlib.sha256(f"c{i}".encode()).hexdigest(),
        )
        for i in range(1200)
    ]
    Interaction.objects.bulk_create(rows, batch_size=100)
    Prediction.objects.bulk_create(
        (
            Prediction(
                interaction=row,
                model_version=version,
                predicted_class="Antagonistic",
                confidence=0.6,
                margin=0.2,
                probabilities=[0.4, 0.6],
            )
            for row in Interaction.objects.filter(project=project)
        ),
        batch_size=50,
    )
    Rule.objects.create(
        project=project, name="inc", field=field, pattern="increase", label_class="Synergistic"
    )
    with small_variable_limit():
        found = interactions_disagreeing_with_rules(project=project, model_version=version)
        assert found.count() == 1200
        preview = rule_service.preview_rule(
            project=project,
            kind="regex",
            field=field,
            pattern="increase",
            label_class="Synergistic",
        )
    assert (preview.matches, preview.disagreements) == (1200, 1200)


def test_the_rules_page_refuses_the_costly_preview_and_the_rule_past_the_cap(
    client, curator_carl, project
):
    client.force_login(curator_carl)
    url = reverse("annotations:rule_create", args=[project.pk])
    form = {
        "name": "slow",
        "kind": "regex",
        "field": "raw",
        "pattern": COSTLY_PREVIEW,
        "label_class": "Synergistic",
        "priority": 0,
        "is_active": "on",
    }
    preview = client.post(url, {**form, "action": "preview"})
    assert preview.status_code == 422
    assert "Nested quantifiers" in preview.content.decode()

    Rule.objects.bulk_create(
        Rule(project=project, name=f"r{i}", pattern=f"word{i}", label_class="Synergistic")
        for i in range(rule_service.MAX_RULES_PER_PROJECT)
    )
    saved = client.post(url, {**form, "pattern": "increase", "action": "save"})
    assert saved.status_code == 422
    assert "the limit" in saved.content.decode()
    assert Rule.objects.filter(project=project).count() == rule_service.MAX_RULES_PER_PROJECT


def test_a_sane_rule_is_never_cut_off_however_many_rows():
    matcher = rule_matching.compile_rules(
        [Rule(id=1, field="raw", pattern=r"\bincrease\b", label_class="Synergistic")]
    )
    for i in range(20_000):
        matcher.first_match(
            blinded_text="", pattern_hash="", description=f"Drug{i} may increase Other{i}."
        )
    assert not matcher.cut_off


def test_a_costly_rule_is_cut_off_and_then_skipped():
    matcher = rule_matching.compile_rules(
        [Rule(id=1, field="raw", pattern=COSTLY_SAVED, label_class="Synergistic")]
    )
    text = "the e the e the e the e the e the e the e the e the e the e the e " * 2
    started = time.perf_counter()
    for _ in range(2000):
        matcher.first_match(blinded_text="", pattern_hash="", description=text)
    assert matcher.cut_off == {0}
    assert time.perf_counter() - started < 5
