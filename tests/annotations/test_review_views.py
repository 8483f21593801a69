"""Review pages and their HTMX endpoints, through Django's test client."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from annotations.models import Label, LabelEvent, ReviewSkip
from annotations.services import labels
from tests.factories import (
    InteractionFactory,
    ModelVersionFactory,
    PredictionFactory,
    ProjectFactory,
)

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def active_version(project):
    return ModelVersionFactory(project=project, is_active=True)


@pytest.fixture
def items(project, active_version):
    """Three interactions of different patterns, most uncertain first."""
    made = []
    for i, confidence in enumerate((0.52, 0.6, 0.7)):
        interaction = InteractionFactory(
            project=project,
            drug_a=f"Warfarin{i}",
            drug_b=f"Aspirin{i}",
            description=f"Warfarin{i} may increase the anticoagulant activities of Aspirin{i}.",
            blinded_text=f"DRUG_A pattern {i} DRUG_B.",
        )
        PredictionFactory(
            interaction=interaction,
            model_version=active_version,
            predicted_class="Synergistic",
            confidence=confidence,
            margin=2 * confidence - 1,
            probabilities=[confidence, 1 - confidence],
        )
        made.append(interaction)
    return made


def test_queue_lists_the_most_uncertain_first(client, reviewer_rita, project, items):
    client.force_login(reviewer_rita)
    response = client.get(reverse("annotations:queue", args=[project.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert body.index("Warfarin0 + Aspirin0") < body.index("Warfarin1 + Aspirin1")
    assert 'name="predicted_class"' in body


def test_queue_filters_come_from_the_query_string(client, reviewer_rita, project, items):
    client.force_login(reviewer_rita)
    response = client.get(
        reverse("annotations:queue", args=[project.pk]), {"min_confidence": "0.65"}
    )
    body = response.content.decode()
    assert "Warfarin2 + Aspirin2" in body
    assert "Warfarin0 + Aspirin0" not in body


def test_start_reviewing_claims_and_redirects_to_the_most_uncertain_item(
    client, reviewer_rita, project, items
):
    client.force_login(reviewer_rita)
    response = client.get(reverse("annotations:review_next", args=[project.pk]))
    assert response.status_code == 302
    assert response.url == reverse("annotations:review_item", args=[items[0].pk])
    assert items[0].claim.user == reviewer_rita


def test_item_page_highlights_both_drugs_and_escapes_the_text(client, reviewer_rita, project):
    interaction = InteractionFactory(
        project=project,
        drug_a="Warfarin",
        drug_b="Aspirin",
        description="<script>alert(1)</script> Warfarin & Aspirin interact.",
    )
    client.force_login(reviewer_rita)
    body = client.get(reverse("annotations:review_item", args=[interaction.pk])).content.decode()
    assert '<mark class="drug drug-a" title="Drug A">Warfarin</mark>' in body
    assert '<mark class="drug drug-b" title="Drug B">Aspirin</mark>' in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<script>alert" not in body
    assert "Labeling guideline" in body
    assert "No prediction from an active model yet." in body


def test_item_page_shows_prediction_probabilities_and_history(
    client, reviewer_rita, reviewer_rob, items
):
    labels.record_review(
        interaction=items[0], user=reviewer_rob, label_class="Antagonistic", expected_version=None
    )
    client.force_login(reviewer_rita)
    body = client.get(reverse("annotations:review_item", args=[items[0].pk])).content.decode()
    assert "Confidence 0.52" in body
    # The two numbers are told apart: the calibrated confidence and the models' raw vote.
    assert "the estimated chance that this class is right" in body
    assert "The models' own probability per class" in body
    assert 'data-key="1"' in body and 'data-key="2"' in body
    assert "rob" in body and "Antagonistic" in body  # history: who and what
    assert 'name="version" value="1"' in body


def _item_page_of(client, reviewer, project, text, probabilities, **signals):
    """The review page of a new interaction whose prediction the writer made from one row of
    Scores (signals: one value per Scores field); returns (the written values, the page)."""
    from annotations.services.jobs.writer import prediction_values
    from modeling.uncertainty import Scores

    version = ModelVersionFactory(project=project, is_active=True)
    interaction = InteractionFactory(project=project, blinded_text=text)
    row = {name: np.asarray([value]) for name, value in signals.items()}
    scores = Scores(probabilities=np.asarray([probabilities], dtype=np.float32), **row)
    (value,) = prediction_values(scores, ["Synergistic", "Antagonistic"])
    PredictionFactory(
        interaction=interaction,
        model_version=version,
        predicted_class=value.predicted_class,
        confidence=value.confidence,
        uncertainty=value.uncertainty,
        signals=value.signals,
    )
    client.force_login(reviewer)
    body = client.get(reverse("annotations:review_item", args=[interaction.pk])).content.decode()
    return value, body


def test_item_page_says_in_words_why_the_model_is_unsure(client, reviewer_rita, project):
    _, body = _item_page_of(
        client,
        reviewer_rita,
        project,
        "DRUG_A x DRUG_B.",
        [0.9, 0.1],
        confidence=0.4,
        uncertainty=0.6,
        novelty=0.5,
        direction=0.9,
        agreement=0.6,
        seen=0.0,
    )
    assert "Confidence 0.40" in body and "uncertainty 0.60" in body
    assert "unlike any labeled sentence (50% of its wording is new)" in body
    assert "it may not be reading the direction" in body
    assert "the models disagree (only 60% vote for this class)" in body


def test_item_page_names_a_labelled_mirror_and_direction_words_pointing_both_ways(
    client, reviewer_rita, project
):
    value, body = _item_page_of(
        client,
        reviewer_rita,
        project,
        "DRUG_A y DRUG_B.",
        [0.4, 0.6],
        confidence=0.6,
        uncertainty=0.4,
        novelty=0.0,
        direction=0.0,
        agreement=1.0,
        seen=0.0,
        mirror=1,  # the mirror makes it Antagonistic, the committee said Synergistic
        committee_class=0,
        mixed=True,
    )
    assert value.predicted_class == "Antagonistic"
    assert value.signals["mirror"] == "Antagonistic" and value.signals["committee"] == "Synergistic"
    assert "its mirror sentence (increase/decrease swapped) is labeled" in body
    assert "which makes this one Antagonistic; the models alone say Synergistic" in body
    assert "its direction words point both ways" in body


def test_htmx_accept_saves_and_swaps_in_the_next_item(client, reviewer_rita, items):
    client.force_login(reviewer_rita)
    response = client.post(
        reverse("annotations:review_action", args=[items[0].pk]),
        {"action": "accept", "version": ""},
        **HTMX,
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="review-pane"' in body and "<html" not in body
    assert "Saved Synergistic for Warfarin0 + Aspirin0." in body
    assert "Warfarin1" in body
    assert response["HX-Push-Url"] == reverse("annotations:review_item", args=[items[1].pk])
    assert Label.objects.get(interaction=items[0]).label_class == "Synergistic"


def test_htmx_choose_class_records_a_change(client, reviewer_rita, items):
    client.force_login(reviewer_rita)
    client.post(
        reverse("annotations:review_action", args=[items[0].pk]),
        {"action": "label", "label_class": "Antagonistic", "version": ""},
        **HTMX,
    )
    event = LabelEvent.objects.get(interaction=items[0])
    assert (event.action, event.new_class, event.predicted_class) == (
        "change",
        "Antagonistic",
        "Synergistic",
    )


def test_stale_save_answers_409_with_what_the_other_reviewer_saved(
    client, reviewer_rita, reviewer_rob, items
):
    labels.record_review(
        interaction=items[0], user=reviewer_rob, label_class="Antagonistic", expected_version=None
    )
    client.force_login(reviewer_rita)
    response = client.post(
        reverse("annotations:review_action", args=[items[0].pk]),
        {"action": "accept", "version": ""},
        **HTMX,
    )
    assert response.status_code == 409
    body = response.content.decode()
    assert "Not saved: conflict." in body
    assert "rob saved &#x27;Antagonistic&#x27;" in body
    label = Label.objects.get(interaction=items[0])
    assert (label.label_class, label.author) == ("Antagonistic", reviewer_rob)


def test_flag_needs_a_note_and_bad_classes_are_refused_with_422(client, reviewer_rita, items):
    client.force_login(reviewer_rita)
    url = reverse("annotations:review_action", args=[items[0].pk])
    response = client.post(url, {"action": "flag", "note": " "}, **HTMX)
    assert response.status_code == 422
    assert "Say what is unclear" in response.content.decode()
    response = client.post(url, {"action": "label", "label_class": "Additive"}, **HTMX)
    assert response.status_code == 422
    assert "&#x27;Additive&#x27; is not a class" in response.content.decode()
    response = client.post(url, {"action": "flag", "note": "two drugs named"}, **HTMX)
    assert response.status_code == 200
    assert Label.objects.get(interaction=items[0]).status == "unclear"


def test_skip_hides_the_item_for_me_and_shows_the_next(client, reviewer_rita, items):
    client.force_login(reviewer_rita)
    response = client.post(reverse("annotations:review_skip", args=[items[0].pk]), **HTMX)
    assert response.status_code == 200
    assert "Skipped Warfarin0 + Aspirin0." in response.content.decode()
    assert ReviewSkip.objects.filter(interaction=items[0], user=reviewer_rita).exists()


def test_undo_brings_the_item_back_without_a_label(client, reviewer_rita, project, items):
    client.force_login(reviewer_rita)
    client.post(
        reverse("annotations:review_action", args=[items[0].pk]), {"action": "accept"}, **HTMX
    )
    response = client.post(
        reverse("annotations:review_undo", args=[project.pk]), {"current": items[1].pk}, **HTMX
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "Undone: Warfarin0 + Aspirin0 is back to no label." in body
    assert response["HX-Push-Url"] == reverse("annotations:review_item", args=[items[0].pk])
    assert not Label.objects.filter(interaction=items[0]).exists()
    response = client.post(
        reverse("annotations:review_undo", args=[project.pk]), {"current": items[0].pk}, **HTMX
    )
    assert "Nothing to undo." in response.content.decode()


def test_undo_in_one_project_leaves_the_users_label_in_another_alone(
    client, reviewer_rita, project, items
):
    other = ProjectFactory(name="Elsewhere")
    elsewhere = InteractionFactory(project=other)
    client.force_login(reviewer_rita)
    client.post(
        reverse("annotations:review_action", args=[items[0].pk]), {"action": "accept"}, **HTMX
    )
    labels.record_review(
        interaction=elsewhere, user=reviewer_rita, label_class="Antagonistic", expected_version=None
    )
    response = client.post(
        reverse("annotations:review_undo", args=[project.pk]), {"current": items[1].pk}, **HTMX
    )
    assert "Undone: Warfarin0 + Aspirin0 is back to no label." in response.content.decode()
    assert Label.objects.get(interaction=elsewhere).label_class == "Antagonistic"


def test_plain_form_posts_work_without_javascript(client, reviewer_rita, items):
    client.force_login(reviewer_rita)
    response = client.post(
        reverse("annotations:review_action", args=[items[0].pk]), {"action": "accept"}
    )
    assert response.status_code == 302
    assert response.url == reverse("annotations:review_item", args=[items[1].pk])


def test_empty_queue_says_so(client, reviewer_rita, project):
    client.force_login(reviewer_rita)
    response = client.get(reverse("annotations:review_next", args=[project.pk]))
    assert response.status_code == 200
    assert "Nothing left to review" in response.content.decode()


def test_a_restricted_project_is_invisible_to_non_members(client, reviewer_rita, reviewer_rob):
    secret = ProjectFactory(name="Secret", is_restricted=True)
    secret.members.add(reviewer_rob)
    interaction = InteractionFactory(project=secret)
    client.force_login(reviewer_rita)
    assert client.get(reverse("annotations:queue", args=[secret.pk])).status_code == 404
    assert client.get(reverse("annotations:review_item", args=[interaction.pk])).status_code == 404
    response = client.post(
        reverse("annotations:review_action", args=[interaction.pk]),
        {"action": "label", "label_class": "Synergistic"},
    )
    assert response.status_code == 404
    assert not Label.objects.exists()
    client.force_login(reviewer_rob)
    assert client.get(reverse("annotations:queue", args=[secret.pk])).status_code == 200


def test_queue_next_page_link_follows_the_keyset_cursor(client, reviewer_rita, project):
    rows = [InteractionFactory(project=project) for _ in range(27)]
    client.force_login(reviewer_rita)
    first = client.get(reverse("annotations:queue", args=[project.pk]), {"drug": ""})
    body = first.content.decode()
    assert body.count("/interactions/") == 25
    link = body.split('class="more"')[1].split('href="')[1].split('"')[0].replace("&amp;", "&")
    assert f"after=id%3A{rows[24].pk}" in link
    second = client.get(link).content.decode()
    assert second.count("/interactions/") == 2
    assert 'class="more"' not in second
