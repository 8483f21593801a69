"""The review queue's unseen-pattern lane: patterns nobody has labeled reach the first page even
when the model's confidences saturate (uncertainty order alone would rank them far down)."""

from __future__ import annotations

import pytest

from annotations.models import Label
from annotations.selectors.queue import QueueCursor, QueueFilters, get_review_queue_page
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory


@pytest.fixture
def active_version(project):
    return ModelVersionFactory(project=project, is_active=True)


def _item(project, version, confidence, *, pattern, cls="Synergistic", **kw):
    interaction = InteractionFactory(
        project=project, blinded_text=f"DRUG_A pattern {pattern} DRUG_B.", **kw
    )
    PredictionFactory(
        interaction=interaction,
        model_version=version,
        predicted_class=cls,
        confidence=confidence,
        margin=2 * confidence - 1,
        probabilities=[confidence, 1 - confidence],
    )
    return interaction


def _seed(interaction, *, status=Label.Status.LABELED):
    Label.objects.create(
        interaction=interaction,
        label_class="" if status == Label.Status.UNCLEAR else "Synergistic",
        status=status,
        source=Label.Source.SEED,
    )


def _hash(pattern):
    return InteractionFactory.build(blinded_text=f"DRUG_A pattern {pattern} DRUG_B.").pattern_hash


def _ids(page):
    return [item.interaction.pk for item in page.items]


def test_an_unlabeled_big_pattern_reaches_the_first_page_when_every_confidence_is_one(
    project, active_version, reviewer_rita
):
    # Six seeded patterns (each with one seed label) whose rows come first in (1.0, 1.0, id)
    # order, then a big pattern nobody labeled and a small one: all confidences saturate.
    for p in range(6):
        rows = [_item(project, active_version, 1.0, pattern=f"seen{p}") for _ in range(4)]
        _seed(rows[0])
    big = [_item(project, active_version, 1.0, pattern="big", cls="Antagonistic") for _ in range(5)]
    small = _item(project, active_version, 1.0, pattern="small")
    plain = get_review_queue_page(project=project, user=reviewer_rita, page_size=4, spread=False)
    assert not {i.pk for i in big} & set(_ids(plain))  # uncertainty order cannot see it

    no_lane = get_review_queue_page(
        project=project, user=reviewer_rita, page_size=4, unseen_lane=False
    )
    assert not {i.pk for i in big} & set(_ids(no_lane))  # the spread alone does not reach it

    page = get_review_queue_page(project=project, user=reviewer_rita, page_size=4)
    assert _ids(page)[:2] == [big[0].pk, small.pk]  # biggest unlabeled pattern first
    assert len(page.items) == 4
    assert [item.interaction.pattern_hash for item in page.items].count(_hash("big")) == 1


def test_a_pattern_with_a_labeled_row_gets_no_lane_slot_but_an_unclear_one_does(
    project, active_version, reviewer_rita
):
    seen = [_item(project, active_version, 0.6, pattern="seen") for _ in range(3)]
    _seed(seen[0])
    unclear = [_item(project, active_version, 0.99, pattern="unclear") for _ in range(2)]
    _seed(unclear[0], status=Label.Status.UNCLEAR)
    for _ in range(30):
        _item(project, active_version, 0.5, pattern="flood")
    _seed(InteractionFactory(project=project, blinded_text="DRUG_A pattern flood DRUG_B."))
    page = get_review_queue_page(project=project, user=reviewer_rita, page_size=4, per_pattern=2)
    # Lane (2 slots): only "unclear" is unlabeled; then uncertainty spread, flood capped at 2.
    assert _ids(page)[0] == unclear[1].pk
    patterns = [item.interaction.pattern_hash for item in page.items]
    assert patterns.count(_hash("flood")) == 2
    assert seen[1].pk in _ids(page)


def test_no_pattern_fills_the_page_and_each_unlabeled_pattern_gets_one_lane_row(
    project, active_version, reviewer_rita
):
    for p in range(5):
        for _ in range(10 - p):
            _item(project, active_version, 1.0, pattern=f"unseen{p}")
    page = get_review_queue_page(project=project, user=reviewer_rita, page_size=8, per_pattern=2)
    patterns = [item.interaction.pattern_hash for item in page.items]
    # Half the page (4 slots) for the four biggest unlabeled patterns, biggest first.
    assert patterns[:4] == [_hash(f"unseen{p}") for p in range(4)]
    assert len(patterns) == 8
    assert max(patterns.count(p) for p in set(patterns)) == 2  # the lane row counts toward the cap
    assert len(_ids(page)) == len(set(_ids(page)))


def test_filters_and_exclusions_apply_to_the_lane(project, active_version, reviewer_rita):
    warfarin = _item(project, active_version, 1.0, pattern="w", drug_a="Warfarin")
    other = [_item(project, active_version, 1.0, pattern="o", drug_a="Aspirin") for _ in range(5)]
    reviewed = _item(project, active_version, 0.5, pattern="o", drug_a="Aspirin")
    _seed(reviewed, status=Label.Status.UNCLEAR)  # reviewed row: hidden, pattern still unseen
    page = get_review_queue_page(
        project=project, user=reviewer_rita, filters=QueueFilters(drug="warfarin")
    )
    assert _ids(page) == [warfarin.pk]
    page = get_review_queue_page(
        project=project, user=reviewer_rita, filters=QueueFilters(predicted_class="Antagonistic")
    )
    assert _ids(page) == []
    page = get_review_queue_page(project=project, user=reviewer_rita, page_size=3)
    assert _ids(page)[0] == other[0].pk and reviewed.pk not in _ids(page)


def test_later_pages_keep_keyset_order_and_never_repeat_a_lane_row(
    project, active_version, reviewer_rita
):
    made = [
        _item(project, active_version, 0.5 + (i % 5) / 10, pattern=f"p{i % 7}") for i in range(40)
    ]
    seen, cursor = [], None
    for _ in range(30):
        page = get_review_queue_page(
            project=project, user=reviewer_rita, page_size=6, cursor=cursor
        )
        seen += _ids(page)
        if page.next_cursor is None:
            break
        cursor = QueueCursor.decode(page.next_cursor)
    assert len(seen) == len(set(seen))
    assert set(seen) <= {i.pk for i in made}
    first = get_review_queue_page(project=project, user=reviewer_rita, page_size=6)
    assert len({item.interaction.pattern_hash for item in first.items[:3]}) == 3


def test_a_pattern_leaves_the_lane_as_soon_as_one_of_its_rows_is_labeled(
    project, active_version, reviewer_rita
):
    from annotations.services import labels

    seen = [_item(project, active_version, 0.5, pattern="seen") for _ in range(3)]
    _seed(seen[0])
    big = [_item(project, active_version, 1.0, pattern="big") for _ in range(4)]
    assert _ids(get_review_queue_page(project=project, user=reviewer_rita, page_size=2))[0] == (
        big[0].pk
    )
    labels.record_review(
        interaction=big[0], user=reviewer_rita, label_class="Synergistic", expected_version=None
    )
    page = get_review_queue_page(project=project, user=reviewer_rita, page_size=2)
    # No lane any more: the most uncertain row leads, then the round-robin spread.
    assert _ids(page) == [seen[1].pk, big[1].pk]
