"""Team review pages and outputs: settings, flag inbox, guideline revisions, JSONL, dashboard."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from annotations.models import Label, LabelEvent, Project, ReviewTask
from annotations.selectors.final_labels import FinalLabelFilters
from annotations.services import blind, labels
from annotations.services.export import build_export_card, stream_export
from annotations.services.export.card import card_markdown
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory


@pytest.fixture
def flagged(project, reviewer_rita):
    interaction = InteractionFactory(project=project)
    labels.record_review(
        interaction=interaction,
        user=reviewer_rita,
        label_class=None,
        status=Label.Status.UNCLEAR,
        note="is a lower serum level more or less drug?",
        expected_version=None,
    )
    return interaction


def test_curators_set_the_second_opinion_share_and_floor(client, project, curator_carl):
    url = reverse("annotations:team", args=[project.pk])
    client.force_login(curator_carl)
    response = client.post(url, {"percent": "25", "below_confidence": "0.7"})
    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.second_opinion_rate, project.second_opinion_below_confidence) == (0.25, 0.7)
    assert client.post(url, {"percent": "250"}).status_code == 400


def test_reviewers_cannot_reach_the_team_pages(client, project, reviewer_rita, flagged):
    client.force_login(reviewer_rita)
    for name in ("team", "adjudications", "flags", "consistency"):
        assert client.get(reverse(f"annotations:{name}", args=[project.pk])).status_code == 403


def test_the_flag_inbox_lists_notes_and_a_curator_labels_one(client, flagged, curator_carl):
    client.force_login(curator_carl)
    page = client.get(reverse("annotations:flags", args=[flagged.project_id])).content.decode()
    assert "is a lower serum level more or less drug?" in page and "rita" in page
    label = Label.objects.get(interaction=flagged)
    url = reverse("annotations:flag_label", args=[flagged.pk])
    response = client.post(url, {"label_class": "Synergistic", "version": label.version})
    assert response.status_code == 302
    label.refresh_from_db()
    assert (label.status, label.label_class, label.author) == (
        "labeled",
        "Synergistic",
        curator_carl,
    )
    # A stale second post is refused (optimistic locking) and changes nothing.
    client.post(url, {"label_class": "Antagonistic", "version": 1})
    label.refresh_from_db()
    assert label.label_class == "Synergistic"


def test_send_back_to_review_puts_it_in_the_queue_with_the_comment(
    client, flagged, curator_carl, reviewer_rob
):
    label = Label.objects.get(interaction=flagged)
    client.force_login(curator_carl)
    response = client.post(
        reverse("annotations:flag_return", args=[flagged.pk]),
        {"comment": "lower level = less drug: Antagonistic", "version": label.version},
    )
    assert response.status_code == 302
    assert not Label.objects.filter(interaction=flagged).exists()
    event = LabelEvent.objects.filter(interaction=flagged).last()
    assert event.action == "reopen" and event.note.startswith("lower level")
    client.force_login(reviewer_rob)
    item = client.get(reverse("annotations:review_next", args=[flagged.project_id]), follow=True)
    text = item.content.decode()
    assert f'data-interaction="{flagged.pk}"' in text
    assert "lower level = less drug: Antagonistic" in text and "Sent back by carl" in text


def test_amending_the_guideline_makes_a_dated_revision_that_answers_record(
    client, project, curator_carl, reviewer_rita
):
    client.force_login(curator_carl)
    url = reverse("annotations:guideline_amend", args=[project.pk])
    assert (
        client.post(url, {"guideline": "New rule: lower level means Antagonistic."}).status_code
        == 302
    )
    project.refresh_from_db()
    assert project.guideline_revision == 2 and project.guideline_revised_at is not None
    client.post(url, {"guideline": "New rule: lower level means Antagonistic."})  # unchanged
    assert Project.objects.get(pk=project.pk).guideline_revision == 2
    interaction = InteractionFactory(project=project)
    labels.record_review(
        interaction=interaction,
        user=reviewer_rita,
        label_class="Synergistic",
        expected_version=None,
    )
    assert LabelEvent.objects.get(interaction=interaction).guideline_revision == 2
    assert client.post(url, {"guideline": "  "}).status_code == 400


def test_jsonl_carries_every_answer_and_the_adjudication(
    project, reviewer_rita, reviewer_rob, curator_carl
):
    from annotations.models import Adjudication
    from annotations.services.adjudication import decide_adjudication

    project.second_opinion_rate = 1.0
    project.save()
    version = ModelVersionFactory(project=project, is_active=True)
    interaction = InteractionFactory(project=project)
    PredictionFactory(interaction=interaction, model_version=version)
    labels.record_review(
        interaction=interaction,
        user=reviewer_rita,
        label_class="Synergistic",
        expected_version=None,
    )
    task = blind.claim_blind_task(project=project, user=reviewer_rob)
    blind.answer_blind_task(task=task, user=reviewer_rob, label_class="Antagonistic", note="hm")
    decide_adjudication(
        adjudication=Adjudication.objects.get(),
        user=curator_carl,
        label_class="Antagonistic",
        expected_version=Label.objects.get().version,
        note="less drug",
    )
    data = b"".join(
        stream_export(project=project, export_format="jsonl", filters=FinalLabelFilters())
    )
    (record,) = [json.loads(line) for line in data.decode().splitlines()]
    assert [(r["reviewer"], r["kind"], r["label"]) for r in record["reviews"]] == [
        ("rita", "review", "Synergistic"),
        ("rob", "second_opinion", "Antagonistic"),
    ]
    assert record["adjudication"]["decided_by"] == "carl"
    assert record["adjudication"]["label"] == "Antagonistic" == record["final_label"]
    assert record["label_source"] == "adjudication" and record["source"] == "review"
    assert ReviewTask.objects.get().agrees_with_first is False


def test_the_dashboard_and_the_card_show_reviewer_agreement(
    client, project, reviewer_rita, reviewer_rob
):
    project.second_opinion_rate = 1.0
    project.save()
    for cls in ("Synergistic", "Antagonistic", "Synergistic"):
        interaction = InteractionFactory(project=project)
        labels.record_review(
            interaction=interaction, user=reviewer_rita, label_class=cls, expected_version=None
        )
        task = blind.claim_blind_task(project=project, user=reviewer_rob)
        blind.answer_blind_task(task=task, user=reviewer_rob, label_class=cls)
    client.force_login(reviewer_rita)
    page = client.get(reverse("annotations:dashboard", args=[project.pk])).content.decode()
    assert "Agreement between reviewers" in page and 'id="alpha-value">1.000' in page
    assert "only 3 items" in page
    card = build_export_card(project=project, filters=FinalLabelFilters())
    assert card["team_agreement"]["krippendorff_alpha"]["value"] == pytest.approx(1.0)
    assert "Krippendorff's alpha (nominal): 1.000" in card_markdown(card)


def test_the_queue_and_the_review_page_say_how_many_are_left_and_the_session_pace(
    client, project, reviewer_rita, reviewer_rob
):
    project.second_opinion_rate = 0.0
    project.save()
    items = [InteractionFactory(project=project) for _ in range(5)]
    # One item reviewed by rob with a blind second opinion open for rita: it counts as left.
    labels.record_review(
        interaction=items[4], user=reviewer_rob, label_class="Synergistic", expected_version=None
    )
    blind.create_tasks(interaction_ids=[items[4].pk], kind=ReviewTask.Kind.SECOND_OPINION)
    client.force_login(reviewer_rita)
    queue = client.get(reverse("annotations:queue", args=[project.pk])).content.decode()
    assert '<strong id="items-left">5</strong> left for you' in queue
    first = client.get(reverse("annotations:review_next", args=[project.pk]), follow=True)
    assert "Blind review" in first.content.decode()
    client.post(
        reverse("annotations:review_action", args=[items[4].pk]),
        {"action": "label", "label_class": "Synergistic", "version": ""},
    )
    client.post(
        reverse("annotations:review_action", args=[items[0].pk]),
        {"action": "label", "label_class": "Synergistic", "version": ""},
    )
    page = client.get(reverse("annotations:review_item", args=[items[1].pk])).content.decode()
    assert '<strong id="items-left">3</strong> left' in page
    assert '<strong id="session-done">2</strong> done' in page
    assert '<details class="card history" id="history">' in page and "<kbd>H</kbd>" in page
