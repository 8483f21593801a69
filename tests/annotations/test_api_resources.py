"""API behaviour per resource: label optimistic locking, keyset pages, rules, runs, queue,
and streamed export downloads."""

from __future__ import annotations

import csv
import io

import pytest
from rest_framework.test import APIClient

from annotations.models import Label, LabelEvent, Rule, Run
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory

pytestmark = pytest.mark.django_db


def _as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_review_is_created_then_updated_with_the_version_it_was_loaded_at(project, reviewer_rita):
    interaction = InteractionFactory(project=project)
    client = _as(reviewer_rita)

    created = client.post(
        "/api/labels/", {"interaction": interaction.pk, "label_class": "Synergistic"}, format="json"
    )
    assert created.status_code == 201
    assert (created.json()["version"], created.headers["ETag"]) == (1, '"1"')
    label_id = created.json()["id"]

    updated = client.patch(
        f"/api/labels/{label_id}/", {"label_class": "Antagonistic", "version": 1}, format="json"
    )
    assert updated.status_code == 200
    assert (updated.json()["label_class"], updated.json()["version"]) == ("Antagonistic", 2)
    assert LabelEvent.objects.filter(interaction=interaction).count() == 2


def test_stale_writes_are_refused_and_change_nothing(project, reviewer_rita, reviewer_rob):
    interaction = InteractionFactory(project=project)
    label_id = (
        _as(reviewer_rita)
        .post(
            "/api/labels/",
            {"interaction": interaction.pk, "label_class": "Synergistic"},
            format="json",
        )
        .json()["id"]
    )
    _as(reviewer_rob).patch(
        f"/api/labels/{label_id}/", {"label_class": "Antagonistic", "version": 1}, format="json"
    )

    stale_body = _as(reviewer_rita).put(
        f"/api/labels/{label_id}/", {"label_class": "Synergistic", "version": 1}, format="json"
    )
    stale_header = _as(reviewer_rita).put(
        f"/api/labels/{label_id}/",
        {"label_class": "Synergistic"},
        format="json",
        HTTP_IF_MATCH='"1"',
    )
    no_version = _as(reviewer_rita).put(
        f"/api/labels/{label_id}/", {"label_class": "Synergistic"}, format="json"
    )
    second_create = _as(reviewer_rita).post(
        "/api/labels/", {"interaction": interaction.pk, "label_class": "Synergistic"}, format="json"
    )

    assert (stale_body.status_code, stale_header.status_code, no_version.status_code) == (
        409,
        412,
        428,
    )
    assert second_create.status_code == 409
    assert "detail" in stale_body.json()
    label = Label.objects.get(pk=label_id)
    assert (label.label_class, label.version) == ("Antagonistic", 2)


def test_if_match_with_the_current_version_succeeds_and_unknown_classes_are_400(
    project, reviewer_rita
):
    interaction = InteractionFactory(project=project)
    client = _as(reviewer_rita)
    label_id = client.post(
        "/api/labels/", {"interaction": interaction.pk, "label_class": "Synergistic"}, format="json"
    ).json()["id"]

    ok = client.put(
        f"/api/labels/{label_id}/",
        {"status": "unclear", "note": "two drugs?"},
        format="json",
        HTTP_IF_MATCH='W/"1"',
    )
    bad = client.put(
        f"/api/labels/{label_id}/", {"label_class": "Additive", "version": 2}, format="json"
    )

    assert ok.status_code == 200 and ok.json()["status"] == "unclear"
    assert bad.status_code == 400 and "Additive" in bad.json()["detail"]


def test_interactions_are_keyset_paginated_in_id_order_and_filterable(project, reviewer_rita):
    rows = InteractionFactory.create_batch(5, project=project)
    special = InteractionFactory(
        project=project, drug_a="Warfarin", description="Warfarin is special."
    )
    client = _as(reviewer_rita)

    seen, url = [], "/api/interactions/?page_size=2"
    while url:
        page = client.get(url).json()
        seen += [item["id"] for item in page["results"]]
        url = page["next"]

    assert seen == [r.pk for r in rows] + [special.pk]
    assert "cursor=" in client.get("/api/interactions/?page_size=2").json()["next"]
    assert [i["id"] for i in client.get("/api/interactions/?drug=warf").json()["results"]] == [
        special.pk
    ]
    assert [i["id"] for i in client.get("/api/interactions/?search=special").json()["results"]] == [
        special.pk
    ]
    assert client.get("/api/interactions/?project=99999999999999999999").status_code == 400


def test_curators_create_preview_and_change_rules_with_clear_errors(
    project, curator_carl, reviewer_rita
):
    version = ModelVersionFactory(project=project, is_active=True)
    PredictionFactory(
        interaction=InteractionFactory(project=project),
        model_version=version,
        predicted_class="Synergistic",
    )
    client = _as(curator_carl)

    bad = client.post(
        "/api/rules/",
        {"project": project.pk, "pattern": "(a+)+", "label_class": "Synergistic"},
        format="json",
    )
    preview = client.post(
        "/api/rules/preview/",
        {"project": project.pk, "pattern": "anticoagulant", "label_class": "Antagonistic"},
        format="json",
    )
    created = client.post(
        "/api/rules/",
        {
            "project": project.pk,
            "pattern": "anticoagulant",
            "label_class": "Antagonistic",
            "priority": 2,
        },
        format="json",
    )
    rule_id = created.json()["id"]
    changed = client.patch(f"/api/rules/{rule_id}/", {"is_active": False}, format="json")

    assert bad.status_code == 400 and "Nested quantifiers" in bad.json()["detail"]
    text = "DRUG_A may increase the anticoagulant activities of DRUG_B."
    shown = preview.json()
    assert shown == {
        "matches": 1,
        "disagreements": 1,
        "model_version": version.number,
        "examples": [text],
        "rows": [
            {
                "interaction_id": shown["rows"][0]["interaction_id"],
                "drug_a": shown["rows"][0]["drug_a"],
                "drug_b": shown["rows"][0]["drug_b"],
                "text": text,
                "predicted_class": "Synergistic",
            }
        ],
        "page": 1,
        "pages": 1,
    }
    assert created.status_code == 201 and changed.json()["is_active"] is False
    assert (
        _as(reviewer_rita)
        .patch(f"/api/rules/{rule_id}/", {"is_active": True}, format="json")
        .status_code
        == 403
    )
    assert client.delete(f"/api/rules/{rule_id}/").status_code == 204
    assert not Rule.objects.exists()


def test_admins_start_and_cancel_runs_and_reviewers_read_their_status(
    project, admin_ada, reviewer_rita
):
    client = _as(admin_ada)

    started = client.post(
        "/api/runs/",
        {"project": project.pk, "kind": "train", "params": {"epochs": 2}},
        format="json",
    )
    bad = client.post(
        "/api/runs/",
        {"project": project.pk, "kind": "train", "params": {"epochs": 0}},
        format="json",
    )
    no_model = client.post(
        "/api/runs/", {"project": project.pk, "kind": "pseudolabel"}, format="json"
    )
    run_id = started.json()["id"]
    status = _as(reviewer_rita).get(f"/api/runs/{run_id}/").json()
    cancelled = client.post(f"/api/runs/{run_id}/cancel/")
    again = client.post(f"/api/runs/{run_id}/cancel/")

    assert (
        started.status_code == 201
        and status["state"] == "queued"
        and status["params"] == {"epochs": 2}
    )
    assert bad.status_code == 400
    assert no_model.status_code == 409 and "no active model version" in no_model.json()["detail"]
    assert cancelled.json()["state"] == "cancelled"
    assert again.status_code == 409
    assert Run.objects.get(pk=run_id).state == "cancelled"


def test_the_queue_endpoint_returns_the_next_unreviewed_items(project, reviewer_rita):
    version = ModelVersionFactory(project=project, is_active=True)
    unsure = PredictionFactory(
        interaction=InteractionFactory(project=project),
        model_version=version,
        confidence=0.55,
        margin=0.1,
        probabilities=[0.55, 0.45],
    )
    PredictionFactory(
        interaction=InteractionFactory(project=project),
        model_version=version,
        confidence=0.99,
        margin=0.98,
        probabilities=[0.99, 0.01],
    )

    items = _as(reviewer_rita).get(f"/api/projects/{project.pk}/queue/?limit=1").json()

    assert [i["interaction"]["id"] for i in items] == [unsure.interaction_id]
    assert items[0]["confidence"] == 0.55


def test_export_downloads_stream_as_safe_attachments(project, curator_carl, reviewer_rita):
    interaction = InteractionFactory(project=project, drug_a="=cmd|' /C calc'!A0")
    Label.objects.create(interaction=interaction, label_class="Synergistic", source="seed")
    client = _as(curator_carl)

    response = client.get(f"/api/projects/{project.pk}/export/?file_format=csv&sources=seed")

    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == 'attachment; filename="ddi-drugbank-ddi.csv"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"].startswith("text/csv")
    (row,) = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    assert row["drug_a"].startswith("'=")
    assert (
        client.get(
            f"/api/projects/{project.pk}/export/?file_format=parquet",
            HTTP_ACCEPT="application/json",
        ).status_code
        == 200
    )
    assert client.get(f"/api/projects/{project.pk}/export/?classes=Additive").status_code == 400
    assert client.get(f"/api/projects/{project.pk}/export/?file_format=xlsx").status_code == 400
    assert _as(reviewer_rita).get(f"/api/projects/{project.pk}/export/").status_code == 403
    card = client.get(f"/api/projects/{project.pk}/export/card/?sources=seed").json()
    assert card["rows"] == 1 and card["sources"]["seed"] == 1
