"""The review queue selector: uncertainty order, pattern spread, filters, keyset pagination."""

from __future__ import annotations

import pytest

from annotations.models import Label, ReviewClaim, ReviewSkip, Rule
from annotations.selectors.queue import QueueCursor, QueueFilters, get_review_queue_page
from annotations.services import labels
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory


@pytest.fixture
def active_version(project):
    return ModelVersionFactory(project=project, is_active=True)


def _item(project, version, confidence, *, pattern="p0", margin=None, cls="Synergistic", **kw):
    interaction = InteractionFactory(
        project=project, blinded_text=f"DRUG_A pattern {pattern} DRUG_B.", **kw
    )
    PredictionFactory(
        interaction=interaction,
        model_version=version,
        predicted_class=cls,
        confidence=confidence,
        margin=2 * confidence - 1 if margin is None else margin,
        probabilities=[confidence, 1 - confidence],
    )
    return interaction


def _ids(page):
    return [item.interaction.pk for item in page.items]


def test_most_uncertain_first_then_smallest_margin_then_id(project, active_version, reviewer_rita):
    sure = _item(project, active_version, 0.95, pattern="a")
    tie_big_margin = _item(project, active_version, 0.6, pattern="b", margin=0.5)
    tie_small_margin = _item(project, active_version, 0.6, pattern="c", margin=0.1)
    unsure = _item(project, active_version, 0.51, pattern="d")
    page = get_review_queue_page(project=project, user=reviewer_rita, spread=False)
    assert _ids(page) == [unsure.pk, tie_small_margin.pk, tie_big_margin.pk, sure.pk]
    assert page.items[0].predicted_class == "Synergistic"


def test_one_pattern_cannot_fill_the_page(project, active_version, reviewer_rita):
    # Ten rows of one very uncertain pattern, then three other patterns slightly more confident.
    for _ in range(10):
        _item(project, active_version, 0.5, pattern="flood")
    others = [_item(project, active_version, 0.6 + i / 100, pattern=f"other{i}") for i in range(3)]
    page = get_review_queue_page(project=project, user=reviewer_rita, page_size=6, per_pattern=2)
    patterns = [item.interaction.pattern_hash for item in page.items]
    flood = InteractionFactory.build(blinded_text="DRUG_A pattern flood DRUG_B.").pattern_hash
    assert len(page.items) == 6
    assert patterns.count(flood) <= 3  # two by the cap, topped up only if nothing else remains
    assert {o.pk for o in others} <= set(_ids(page))
    # Round-robin: the most uncertain row of each pattern comes before any pattern's second row.
    assert patterns[0] == flood and len(set(patterns[:4])) == 4


def test_big_patterns_filling_the_window_still_leave_the_first_page_to_distinct_patterns(
    project, active_version, reviewer_rita
):
    # Two big, very uncertain patterns fill the whole candidate window (page 5 x 8 = 40 rows);
    # five small patterns sit below it, the most uncertain of them first.
    for pattern in ("big1", "big2"):
        for _ in range(25):
            _item(project, active_version, 0.5, pattern=pattern)
    small = [_item(project, active_version, 0.7 + i / 100, pattern=f"s{i}") for i in range(5)]
    for pattern in ("big1", "big2", *(f"s{i}" for i in range(5))):  # no unseen-pattern lane
        Label.objects.create(
            interaction=InteractionFactory(
                project=project, blinded_text=f"DRUG_A pattern {pattern} DRUG_B."
            ),
            label_class="Synergistic",
            source=Label.Source.SEED,
        )
    page = get_review_queue_page(project=project, user=reviewer_rita, page_size=5)
    patterns = [item.interaction.pattern_hash for item in page.items]
    assert len(set(patterns)) == 5  # one row each: both big patterns, then the 3 next ones
    assert _ids(page)[2:] == [s.pk for s in small[:3]]
    # The leaders sit outside keyset order: walking the pages never shows a row twice, and each
    # small pattern's row once (rows deferred past a cursor come back on the first page later).
    seen, cursor = _ids(page), QueueCursor.decode(page.next_cursor)
    while cursor is not None:
        page = get_review_queue_page(
            project=project, user=reviewer_rita, page_size=5, cursor=cursor
        )
        seen += _ids(page)
        cursor = QueueCursor.decode(page.next_cursor) if page.next_cursor else None
    assert len(seen) == len(set(seen))
    assert {s.pk for s in small} <= set(seen)


def test_a_small_page_is_topped_up_when_only_one_pattern_is_left(
    project, active_version, reviewer_rita
):
    for _ in range(5):
        _item(project, active_version, 0.5, pattern="only")
    page = get_review_queue_page(project=project, user=reviewer_rita, page_size=4, per_pattern=1)
    assert len(page.items) == 4


def test_keyset_pages_cover_every_row_once_in_order(project, active_version, reviewer_rita):
    made = [_item(project, active_version, 0.5 + (i % 7) / 20, pattern=f"p{i}") for i in range(23)]
    seen, cursor = [], None
    while True:
        page = get_review_queue_page(
            project=project, user=reviewer_rita, page_size=5, cursor=cursor, spread=False
        )
        seen += _ids(page)
        if page.next_cursor is None:
            break
        cursor = QueueCursor.decode(page.next_cursor)
    assert sorted(seen) == sorted(i.pk for i in made)
    assert len(seen) == len(set(seen))
    confidences = [
        i.predictions.get().confidence for i in sorted(made, key=lambda x: seen.index(x.pk))
    ]
    assert confidences == sorted(confidences)


def test_spread_pages_never_repeat_a_row(project, active_version, reviewer_rita):
    for i in range(40):
        _item(project, active_version, 0.5 + (i % 5) / 10, pattern=f"p{i % 3}")
    seen, cursor = [], None
    for _ in range(20):
        page = get_review_queue_page(
            project=project, user=reviewer_rita, page_size=6, cursor=cursor
        )
        seen += _ids(page)
        if page.next_cursor is None:
            break
        cursor = QueueCursor.decode(page.next_cursor)
    assert len(seen) == len(set(seen))


def test_malformed_cursor_means_from_the_start():
    assert QueueCursor.decode("nonsense") is None
    assert QueueCursor.decode("0.5:x:3") is None
    cursor = QueueCursor(0.25, 0.1, 7)
    assert QueueCursor.decode(cursor.encode()) == cursor


def test_reviewed_rows_are_hidden_by_default_and_shown_on_request(
    project, active_version, reviewer_rita
):
    done = _item(project, active_version, 0.5, pattern="a")
    todo = _item(project, active_version, 0.6, pattern="b")
    labels.record_review(
        interaction=done, user=reviewer_rita, label_class="Synergistic", expected_version=None
    )
    assert _ids(get_review_queue_page(project=project, user=reviewer_rita)) == [todo.pk]
    everything = get_review_queue_page(
        project=project, user=reviewer_rita, filters=QueueFilters(unreviewed_only=False)
    )
    assert set(_ids(everything)) == {done.pk, todo.pk}


def test_filters_by_class_confidence_drug_text_and_source(project, active_version, reviewer_rita):
    a = _item(project, active_version, 0.55, pattern="a", cls="Antagonistic", drug_a="Warfarin")
    b = _item(
        project,
        active_version,
        0.75,
        pattern="b",
        description="Aspirin may decrease the excretion of Probenecid.",
        source_file="batch2.csv",
    )
    _item(project, active_version, 0.95, pattern="c")

    def ids(**kw):
        page = get_review_queue_page(
            project=project, user=reviewer_rita, filters=QueueFilters(**kw)
        )
        return _ids(page)

    assert ids(predicted_class="Antagonistic") == [a.pk]
    assert ids(min_confidence=0.6, max_confidence=0.8) == [b.pk]
    assert ids(drug="warfarin") == [a.pk]
    assert ids(text="EXCRETION") == [b.pk]
    assert ids(source="batch2.csv") == [b.pk]


def test_rule_disagreement_filter_keeps_rows_where_a_rule_says_otherwise(
    project, active_version, reviewer_rita, curator_carl
):
    disagree = _item(project, active_version, 0.7, pattern="increase", cls="Antagonistic")
    _item(project, active_version, 0.6, pattern="other", cls="Antagonistic")
    Rule.objects.create(
        project=project,
        name="increase means synergy",
        kind=Rule.Kind.KEYWORD,
        pattern="increase",
        label_class="Synergistic",
        created_by=curator_carl,
    )
    page = get_review_queue_page(
        project=project, user=reviewer_rita, filters=QueueFilters(disagrees_with_rule=True)
    )
    assert _ids(page) == [disagree.pk]


def test_skipped_and_claimed_by_others_are_hidden(
    project, active_version, reviewer_rita, reviewer_rob
):
    skipped = _item(project, active_version, 0.5, pattern="a")
    claimed = _item(project, active_version, 0.55, pattern="b")
    free = _item(project, active_version, 0.6, pattern="c")
    ReviewSkip.objects.create(interaction=skipped, user=reviewer_rita)
    labels.claim_interaction(interaction_id=claimed.pk, user=reviewer_rob)
    assert _ids(get_review_queue_page(project=project, user=reviewer_rita)) == [free.pk]
    # Rob sees his own claim, and Rita's skip does not hide the row from him.
    assert _ids(get_review_queue_page(project=project, user=reviewer_rob)) == [
        skipped.pk,
        claimed.pk,
        free.pk,
    ]
    assert ReviewClaim.objects.count() == 1


def test_without_an_active_model_every_interaction_is_reviewable_in_id_order(
    project, reviewer_rita
):
    rows = [InteractionFactory(project=project) for _ in range(3)]
    page = get_review_queue_page(project=project, user=reviewer_rita, page_size=2)
    assert _ids(page) == [rows[0].pk, rows[1].pk]
    assert page.items[0].confidence is None
    rest = get_review_queue_page(
        project=project,
        user=reviewer_rita,
        page_size=2,
        cursor=QueueCursor.decode(page.next_cursor),
    )
    assert _ids(rest) == [rows[2].pk]
    assert rest.next_cursor is None
    Label.objects.create(interaction=rows[0], label_class="Synergistic", source="seed")
    assert rows[0].pk not in _ids(get_review_queue_page(project=project, user=reviewer_rita))
