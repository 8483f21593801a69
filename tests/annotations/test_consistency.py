"""Consistency checks: on the full DrugBank set (counts in the README) and through the queue."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from django.urls import reverse

from annotations.models import Label
from annotations.selectors.consistency import (
    find_near_duplicates,
    find_pair_contradictions,
    find_pattern_conflicts,
    get_consistency_report,
)
from annotations.selectors.queue import QueueFilters, get_review_queue_page
from annotations.services import labels
from modeling.blinding import blind
from tests.factories import InteractionFactory

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
DATA = Path(__file__).resolve().parents[1] / "data"


def _full_drugbank():
    """(row number, drug A, drug B, blinded text) of the 192,284 rows; a missing name is blinded
    with its DrugBank id, as the importer does."""
    with open(SHARED / "drugbank_ddi_full.csv", newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            drug_a = row["Drug 1"] or row["drug1_id"]
            drug_b = row["Drug 2"] or row["drug2_id"]
            text = blind(row["Interaction Description"], drug_a, drug_b)
            yield number, drug_a, drug_b, text


@pytest.mark.slow
def test_the_checks_on_the_full_drugbank_set():
    """Final labels = the 86-pattern reference (as if every pattern had been reviewed by its
    guideline label); human labels = the 192 seed labels. Prints the README's numbers."""
    with open(DATA / "drugbank_full_reference_patterns.csv", newline="", encoding="utf-8") as f:
        reference = {row["pattern"]: row["label"] for row in csv.DictReader(f)}
    rows = list(_full_drugbank())
    assert len(rows) == 192_284
    final = {number: reference[text] for number, _, _, text in rows}
    pairs, several = find_pair_contradictions(
        (number, a, b, final[number]) for number, a, b, _ in rows
    )
    assert several == 289  # ordered pairs with two different sentences (the number)
    by_text: dict[str, dict[int, str]] = {}
    for number, _, _, text in rows:
        by_text.setdefault(text, {})[number] = final[number]
    near = find_near_duplicates({text: (text, labels) for text, labels in by_text.items()})
    seeds = {}
    with open(SHARED / "drugbank_ddi_seed_labels.csv", newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.DictReader(f), start=2):
            text = blind(row["Interaction Description"], row["Drug 1"], row["Drug 2"])
            seeds[number] = (text, row["label"])
    patterns = find_pattern_conflicts((n, t, t, label) for n, (t, label) in seeds.items())
    print(
        f"\nfull DrugBank: {several} ordered pairs with 2+ sentences, {len(pairs)} of them with "
        f"contradicting final labels; {len(by_text)} blinded texts, {len(near)} near-duplicate "
        f"pairs with different labels; {len(patterns)} seed patterns with two labels"
    )
    assert 0 < len(pairs) <= several
    assert patterns == []  # the 192 seeds agree with each other pattern by pattern
    assert near, "increase/decrease twins of one sentence differ by design"
    assert all("≈" in group.title for group in near)


def test_each_check_finds_its_case_and_the_queue_filters_to_it(project, reviewer_rita):
    same_pair = [
        InteractionFactory(
            project=project,
            drug_a="Warfarin",
            drug_b="Aspirin",
            description=f"Warfarin sentence {i} Aspirin",
            blinded_text=f"DRUG_A sentence {i} with a long distinct tail {i * 'x'} DRUG_B",
        )
        for i in range(2)
    ]
    twins = [
        InteractionFactory(project=project, blinded_text="DRUG_A may increase the X of DRUG_B.")
        for _ in range(2)
    ]
    near = InteractionFactory(project=project, blinded_text="DRUG_A may decrease the X of DRUG_B.")
    plain = InteractionFactory(project=project, blinded_text="Something else entirely here.")
    for item, cls in [
        (same_pair[0], "Synergistic"),
        (same_pair[1], "Antagonistic"),
        (twins[0], "Synergistic"),
        (twins[1], "Antagonistic"),
        (near, "Antagonistic"),
        (plain, "Synergistic"),
    ]:
        labels.record_review(
            interaction=item, user=reviewer_rita, label_class=cls, expected_version=None
        )
    report = get_consistency_report(project=project)
    assert report.interaction_ids("pair") == {i.pk for i in same_pair}
    assert report.interaction_ids("pattern") == {i.pk for i in twins}
    assert near.pk in report.interaction_ids("near_duplicate")
    assert plain.pk not in set().union(*(report.interaction_ids(k) for k in report.groups))
    page = get_review_queue_page(
        project=project,
        user=reviewer_rita,
        filters=QueueFilters(unreviewed_only=False, consistency="pattern"),
    )
    assert {item.interaction.pk for item in page.items} == {i.pk for i in twins}
    assert Counter(Label.objects.values_list("source", flat=True)) == {"review": 6}


def test_the_checks_page_lists_counts_and_links_for_curators(
    client, project, reviewer_rita, curator_carl
):
    url = reverse("annotations:consistency", args=[project.pk])
    client.force_login(reviewer_rita)
    assert client.get(url).status_code == 403
    client.force_login(curator_carl)
    page = client.get(url).content.decode()
    assert "same drug pair" in page and "consistency=pair" in page


def test_the_queue_api_filters_to_a_check_and_rejects_an_unknown_one(project, reviewer_rita):
    from rest_framework.test import APIClient

    twins = [
        InteractionFactory(project=project, blinded_text="DRUG_A same words DRUG_B.")
        for _ in range(2)
    ]
    InteractionFactory(project=project, blinded_text="DRUG_A other words entirely DRUG_B.")
    for item, cls in zip(twins, ("Synergistic", "Antagonistic"), strict=True):
        labels.record_review(
            interaction=item, user=reviewer_rita, label_class=cls, expected_version=None
        )
    api = APIClient()
    api.force_authenticate(reviewer_rita)
    url = f"/api/projects/{project.pk}/queue/"
    rows = api.get(url, {"consistency": "pattern"}).json()
    assert sorted(row["interaction"]["id"] for row in rows) == sorted(t.pk for t in twins)
    assert api.get(url, {"consistency": "bogus"}).status_code == 400
