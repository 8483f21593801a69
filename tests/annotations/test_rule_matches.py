"""Issue 18, points 1 and 9: rule matches are computed once per rule (and per imported row) and
stored; the export, the queue's rule filter and the final labels read them and run no regex.

The oracle for "same results as before" is the old per-request path: the compiled matcher
applied to every row in id order (RuleMatcher.first_match), which is still the engine that
fills the stored matches.
"""

from __future__ import annotations

import csv
import time

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotations import rule_matching
from annotations.models import Interaction, Prediction, Rule, RuleMatch
from annotations.rule_matches import ensure_rule_matches
from annotations.selectors.rules import interactions_disagreeing_with_rules, with_winning_rule
from annotations.services import rules as rule_service
from annotations.services.export import make_filters, stream_export
from annotations.services.importing import import_interactions
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db

VERBS = ("increase", "decrease", "reduce", "raise", "potentiate", "antagonize")
COSTLY_SAVED = r"e\x20(?:.{1,6}){1,6}\x7e"  # from the review: 10 of these took the queue 12.6 s
# Over 60 short rows COSTLY_SAVED costs ~3 ms a row, ~0.2 CPU-s in all: under the guard's 0.25 s
# grace on a quiet machine, so whether it was cut off depended on the load. One more repetition
# costs ~15 ms a row (0.9 s over 60 rows), over the budget on any machine.
COSTLIER_SAVED = r"e\x20(?:.{1,6}){1,7}\x7e"


def _write_file(path, start: int, n: int):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Drug 1", "Drug 2", "Interaction Description"])
        for i in range(start, start + n):
            a, b = f"Drugamab{i}", f"Otherzole{i}"
            verb = VERBS[i % len(VERBS)]
            tail = "serum level" if i % 3 else f"risk of bleeding (case {i % 40})"
            writer.writerow([a, b, f"{a} may {verb} the {tail} of {b}."])
    return path


def _predict_all(project, version):
    Prediction.objects.bulk_create(
        Prediction(
            interaction_id=pk,
            model_version=version,
            predicted_class="Synergistic" if pk % 2 else "Antagonistic",
            probabilities=[0.5, 0.5],
            margin=0.1,
            confidence=0.55,
        )
        for pk in Interaction.objects.filter(project=project)
        .exclude(predictions__model_version=version)
        .values_list("id", flat=True)
    )


def _sane_rules(project, user):
    specs = [
        ("regex", "blinded", r"\bincrease\b", "Synergistic", 0),
        ("keyword", "blinded", "decrease", "Antagonistic", 0),
        ("regex", "raw", r"Drugamab\d*7 ", "Antagonistic", 5),  # raw: the row's own names
        ("regex", "blinded", r"bleeding \(case \d+\)", "Antagonistic", 2),
        ("keyword", "raw", "potentiate", "Synergistic", 1),
    ]
    return [
        rule_service.create_rule(
            project=project,
            user=user,
            name=pattern,
            kind=kind,
            field=field,
            pattern=pattern,
            label_class=cls,
            priority=priority,
        )
        for kind, field, pattern, cls, priority in specs
    ]


def _old_semantics(project, version):
    """(winning rule id per interaction, disagreeing ids) as the per-request scan computed them."""
    matcher = rule_service.get_rule_matcher(project=project)
    predicted = dict(
        Prediction.objects.filter(model_version=version).values_list(
            "interaction_id", "predicted_class"
        )
    )
    winners, disagree = {}, []
    for pk, blinded, pattern_hash, description in (
        Interaction.objects.filter(project=project)
        .order_by("id")
        .values_list("id", "blinded_text", "pattern_hash", "description")
    ):
        hit = matcher.first_match(
            blinded_text=blinded, pattern_hash=pattern_hash, description=description
        )
        winners[pk] = hit.id if hit else None
        if hit is not None and pk in predicted and predicted[pk] != hit.label_class:
            disagree.append(pk)
    return winners, disagree


def _stored_semantics(project, version):
    rows = with_winning_rule(Interaction.objects.filter(project=project), project=project)
    winners = dict(rows.values_list("id", "rule_id"))
    disagree = list(
        interactions_disagreeing_with_rules(project=project, model_version=version).values_list(
            "id", flat=True
        )
    )
    return winners, disagree


@pytest.fixture
def counted_matches(monkeypatch):
    """Counts every regex evaluation (CompiledRule.matches is where each one runs)."""
    calls = {"n": 0}
    original = rule_matching.CompiledRule.matches

    def counting(self, text):
        calls["n"] += 1
        return original(self, text)

    monkeypatch.setattr(rule_matching.CompiledRule, "matches", counting)
    return calls


def test_stored_matches_give_the_same_winners_and_disagreements_as_the_old_scan(
    project, curator_carl, tmp_path
):
    import_interactions(project=project, path=_write_file(tmp_path / "a.csv", 0, 600))
    version = ModelVersionFactory(project=project, is_active=True)
    rules = _sane_rules(project, curator_carl)
    # Rows imported after the rules are matched by the import itself.
    import_interactions(project=project, path=_write_file(tmp_path / "b.csv", 600, 400))
    _predict_all(project, version)
    rule_service.update_rule(rule=rules[1], is_active=False)

    old_winners, old_disagree = _old_semantics(project, version)
    new_winners, new_disagree = _stored_semantics(project, version)

    assert new_winners == old_winners
    assert new_disagree == old_disagree
    assert len(set(old_winners.values())) >= 4 and old_disagree  # the rules do decide rows


def test_editing_a_pattern_refreshes_its_matches_and_deleting_drops_them(
    project, curator_carl, tmp_path
):
    import_interactions(project=project, path=_write_file(tmp_path / "a.csv", 0, 120))
    rule = rule_service.create_rule(
        project=project,
        user=curator_carl,
        name="inc",
        pattern=r"\bincrease\b",
        label_class="Synergistic",
    )
    assert RuleMatch.objects.filter(rule=rule).count() == 20  # i % 6 == 0
    rule_service.update_rule(rule=rule, pattern=r"\b(increase|raise)\b")
    assert RuleMatch.objects.filter(rule=rule).count() == 40
    rule_service.update_rule(rule=rule, priority=3, label_class="Antagonistic")  # no rescan
    assert RuleMatch.objects.filter(rule=rule).count() == 40
    rule_service.delete_rule(rule=rule)
    assert not RuleMatch.objects.exists()


def test_export_and_the_queue_rule_filter_run_no_regex_with_ten_costly_rules(
    project, curator_carl, reviewer_rita, tmp_path, counted_matches
):
    import_interactions(project=project, path=_write_file(tmp_path / "a.csv", 0, 3000))
    version = ModelVersionFactory(project=project, is_active=True)
    _predict_all(project, version)
    _sane_rules(project, curator_carl)
    # Ten costly rules saved before the guard existed (straight to the table, as old rows are).
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
    started = time.perf_counter()
    ensure_rule_matches(project=project)  # their first (and only) matching, under the guard
    upgrade_s = time.perf_counter() - started
    assert Rule.objects.filter(is_too_costly=True).count() == 10
    assert upgrade_s < 10 * (rule_matching.RULE_COST_GRACE_S + rule_matching.MATCH_TIMEOUT_S) + 5
    expected_winners, expected_disagree = _old_semantics(project, version)
    counted_matches["n"] = 0

    started = time.perf_counter()
    body = b"".join(
        stream_export(project=project, export_format="csv", filters=make_filters(project=project))
    )
    api = APIClient()
    api.force_authenticate(reviewer_rita)
    queue = api.get(
        f"/api/projects/{project.pk}/queue/", {"disagrees_with_rule": "true", "limit": 50}
    )
    client = APIClient()
    client.force_login(reviewer_rita)
    page = client.get(
        reverse("annotations:queue", args=[project.pk]), {"disagrees_with_rule": "on"}
    )
    elapsed = time.perf_counter() - started

    # Figures for the README (shown with -s).
    print(f"\nrule matches: first matching {upgrade_s:.2f} s; export+queue {elapsed:.2f} s")
    assert counted_matches["n"] == 0  # no regex ran at request time
    assert queue.status_code == 200 and page.status_code == 200
    assert elapsed < 10, elapsed  # ~1 s here; the review measured 12.6 s + 78 s on 79 rows
    assert body.count(b"\n") == 3001
    listed = [item["interaction"]["id"] for item in queue.json()]
    assert listed and set(listed) <= set(expected_disagree)
    assert _stored_semantics(project, version) == (expected_winners, expected_disagree)


def test_an_import_stores_the_new_rows_matches_so_the_next_read_runs_no_regex(
    project, curator_carl, tmp_path, counted_matches
):
    rule = rule_service.create_rule(
        project=project,
        user=curator_carl,
        name="inc",
        pattern=r"\bincrease\b",
        label_class="Synergistic",
    )
    import_interactions(project=project, path=_write_file(tmp_path / "a.csv", 0, 60))
    assert RuleMatch.objects.filter(rule=rule).count() == 10
    assert Rule.objects.get(pk=rule.pk).matched_through_id == Interaction.objects.latest("id").id
    counted_matches["n"] = 0
    b"".join(
        stream_export(project=project, export_format="csv", filters=make_filters(project=project))
    )
    assert counted_matches["n"] == 0


@pytest.fixture
def one_sane_one_costly(project, curator_carl, tmp_path):
    """60 imported rows, a rule matching 10 of them and a costly rule saved past the guard."""
    import_interactions(project=project, path=_write_file(tmp_path / "a.csv", 0, 60))
    rule_service.create_rule(
        project=project,
        user=curator_carl,
        name="inc",
        pattern=r"\bincrease\b",
        label_class="Synergistic",
    )
    Rule.objects.create(
        project=project, name="slow", field="raw", pattern=COSTLIER_SAVED, label_class="Synergistic"
    )
    ensure_rule_matches(project=project)
    return project


def test_the_rules_page_shows_each_rules_match_count_and_the_costly_ones(
    client, project, curator_carl, one_sane_one_costly
):
    client.force_login(curator_carl)
    body = client.get(reverse("annotations:rules", args=[project.pk])).content.decode()
    assert "<td>10</td>" in body
    assert "too costly to match, so it decides nothing" in body


def test_the_card_and_the_api_tell_a_too_costly_rule_from_an_active_one(
    project, curator_carl, one_sane_one_costly
):
    from annotations.services.export import build_export_card
    from annotations.services.export.card import card_markdown

    card = build_export_card(project=project, filters=make_filters(project=project))
    assert [r["name"] for r in card["rules"]] == ["inc"]
    assert [r["name"] for r in card["rules_too_costly"]] == ["slow"]
    assert "too costly to match, decides nothing" in card_markdown(card)
    api = APIClient()
    api.force_authenticate(curator_carl)
    rows = {r["name"]: r for r in api.get("/api/rules/").json()["results"]}
    assert (rows["slow"]["is_too_costly"], rows["slow"]["match_count"]) == (True, 0)
    assert rows["inc"]["is_too_costly"] is False and rows["inc"]["match_count"] == 10
