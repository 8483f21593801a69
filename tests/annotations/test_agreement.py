"""Agreement numbers: the same values scikit-learn and krippendorff give on fixed data."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from django.utils import timezone
from sklearn.metrics import cohen_kappa_score

from annotations.models import Adjudication, Label, ReviewTask
from annotations.roles import Role
from annotations.selectors.agreement import (
    cohen_kappa,
    get_agreement_report,
    krippendorff_alpha,
)
from tests.factories import InteractionFactory, UserFactory

CLASSES = ["Synergistic", "Antagonistic"]
S, A = CLASSES
# 40 fixed items, rater one and rater two (8 disagreements, both classes well represented).
FIRST = [S] * 22 + [A] * 18
SECOND = [S] * 18 + [A] * 4 + [S] * 4 + [A] * 14


def test_kappa_is_scikit_learns_with_an_interval_around_it():
    result = cohen_kappa(FIRST, SECOND, CLASSES)
    assert result.value == pytest.approx(cohen_kappa_score(FIRST, SECOND))
    assert result.low < result.value < result.high
    assert result.items == 40 and result.warnings == []


def test_alpha_is_the_krippendorff_packages_with_missing_answers():
    ratings = {i: {"rita": FIRST[i], "rob": SECOND[i]} for i in range(40)}
    ratings[40] = {"rita": S, "sam": S}
    ratings[41] = {"rob": A, "sam": S}
    result = krippendorff_alpha(ratings, CLASSES)
    code = {S: 0, A: 1}
    matrix = np.full((3, 42), np.nan)
    for item, answers in ratings.items():
        for rater, answer in answers.items():
            matrix[["rita", "rob", "sam"].index(rater), item] = code[answer]
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    assert result.value == pytest.approx(expected)
    assert result.low < result.value < result.high and result.items == 42


def test_few_items_or_a_skewed_class_come_with_a_warning():
    few = cohen_kappa([S, S, A, A, S], [S, A, A, A, S], CLASSES)
    assert any("only 5 items" in w for w in few.warnings)
    skewed = cohen_kappa([S] * 39 + [A], [S] * 38 + [A, S], CLASSES)
    assert any("prevalence paradox" in w for w in skewed.warnings)
    single = cohen_kappa([S] * 40, [S] * 40, CLASSES)
    assert single.value is None and any("undefined" in w for w in single.warnings)


@pytest.fixture
def answered_rows(project):
    rita = UserFactory(username="rita", role=Role.REVIEWER)
    rob = UserFactory(username="rob", role=Role.REVIEWER)
    now = timezone.now()
    items = []
    for i, (first, second) in enumerate(zip(FIRST, SECOND, strict=True)):
        interaction = InteractionFactory(project=project)
        items.append(interaction)
        ReviewTask.objects.create(
            interaction=interaction,
            kind=ReviewTask.Kind.SECOND_OPINION,
            answered_by=rob,
            answered_at=now,
            answer_class=second,
            answer_status=Label.Status.LABELED,
            first_class=first,
            first_status=Label.Status.LABELED,
            first_reviewer=rita,
            first_source=Label.Source.REVIEW,
            guideline_revision=1 if i < 20 else 2,
        )
        if first != second:
            Adjudication.objects.create(
                interaction=interaction, decided_at=now, decision_class=first
            )
    return items


def test_the_project_report_uses_the_stored_answers(project, answered_rows):
    report = get_agreement_report(project=project)
    (pair,) = report.pairs
    assert (pair.reviewer_a, pair.reviewer_b) == ("rita", "rob")
    assert pair.kappa.value == pytest.approx(cohen_kappa_score(FIRST, SECOND))
    assert pair.observed == pytest.approx(32 / 40)
    by = {row.reviewer: row for row in report.by_reviewer}
    assert (by["rita"].items, by["rita"].agreed) == (8, 8)
    assert (by["rob"].items, by["rob"].agreed) == (8, 0)
    assert [r.revision for r in report.by_revision] == [1, 2]
    assert report.by_revision[0].kappa.value == pytest.approx(
        cohen_kappa_score(FIRST[:20], SECOND[:20])
    )
    card = report.as_dict()
    assert card["krippendorff_alpha"]["items"] == 40


def test_the_vectorised_bootstrap_is_scikit_learns_kappa_on_each_resample():
    from annotations.selectors.agreement import (
        BOOTSTRAP_SAMPLES,
        BOOTSTRAP_SEED,
        _bootstrap_kappas,
    )

    code = {S: 0, A: 1}
    a = np.array([code[x] for x in FIRST])
    b = np.array([code[x] for x in SECOND])
    fast = _bootstrap_kappas(a, b, 2)
    picks = np.random.default_rng(BOOTSTRAP_SEED).integers(0, 40, (BOOTSTRAP_SAMPLES, 40))
    for row in range(50):
        expected = cohen_kappa_score(a[picks[row]], b[picks[row]], labels=[0, 1])
        assert fast[row] == pytest.approx(expected)
