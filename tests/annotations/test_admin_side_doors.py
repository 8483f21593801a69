"""The Django admin is no side door: even a superuser cannot write, through it, what has a
service (runs, model versions, predictions, rules); a rule deleted there goes through the service."""

from __future__ import annotations

import pytest

from annotations.models import ModelVersion, Prediction, Rule, Run
from tests.factories import ModelVersionFactory, PredictionFactory, UserFactory


@pytest.fixture
def root_rosa(db, client):
    rosa = UserFactory(username="rosa", is_staff=True, is_superuser=True)
    client.force_login(rosa)
    return rosa


def test_a_run_added_in_the_admin_is_refused_so_validate_params_cannot_be_skipped(
    client, root_rosa, project
):
    assert client.get("/admin/annotations/run/add/").status_code == 403
    response = client.post(
        "/admin/annotations/run/add/",
        {"project": project.pk, "kind": "train", "state": "queued", "params": '{"epochs": -5}'},
    )
    assert response.status_code == 403
    assert not Run.objects.exists()
    run = Run.objects.create(project=project, kind=Run.Kind.TRAIN)
    assert client.get(f"/admin/annotations/run/{run.pk}/change/").status_code == 200  # view
    response = client.post(
        f"/admin/annotations/run/{run.pk}/change/", {"state": "succeeded", "params": "{}"}
    )
    assert response.status_code == 403
    run.refresh_from_db()
    assert run.state == Run.State.QUEUED
    assert (
        client.post(f"/admin/annotations/run/{run.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert Run.objects.filter(pk=run.pk).exists()


def test_a_model_version_cannot_be_made_active_in_the_admin_past_promotion(
    client, root_rosa, project
):
    version = ModelVersionFactory(project=project, is_active=False)
    url = f"/admin/annotations/modelversion/{version.pk}/change/"
    assert client.get(url).status_code == 200
    response = client.post(
        url,
        {
            "project": project.pk,
            "number": version.number,
            "backbone": version.backbone,
            "status": version.status,
            "is_active": "on",
        },
    )
    assert response.status_code == 403
    version.refresh_from_db()
    assert version.is_active is False
    assert client.get("/admin/annotations/modelversion/add/").status_code == 403
    assert not ModelVersion.objects.filter(is_active=True).exists()


def test_a_prediction_cannot_be_edited_added_or_deleted_in_the_admin(client, root_rosa, project):
    prediction = PredictionFactory(
        model_version=ModelVersionFactory(project=project), interaction__project=project
    )
    url = f"/admin/annotations/prediction/{prediction.pk}/change/"
    assert client.get(url).status_code == 200
    response = client.post(url, {"predicted_class": "Antagonistic", "confidence": "0.99"})
    assert response.status_code == 403
    prediction.refresh_from_db()
    assert (prediction.predicted_class, prediction.confidence) == ("Synergistic", 0.8)
    assert client.get("/admin/annotations/prediction/add/").status_code == 403
    url = f"/admin/annotations/prediction/{prediction.pk}/delete/"
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert Prediction.objects.filter(pk=prediction.pk).exists()


def test_a_rule_cannot_be_added_or_edited_in_the_admin_past_the_backtracking_guard(
    client, root_rosa, project
):
    response = client.post(
        "/admin/annotations/rule/add/",
        {
            "project": project.pk,
            "name": "catastrophic",
            "kind": "regex",
            "field": "blinded_text",
            "pattern": "(a+)+$",
            "label_class": "Synergistic",
            "priority": "0",
            "is_active": "on",
        },
    )
    assert response.status_code == 403
    assert not Rule.objects.exists()
    rule = Rule.objects.create(
        project=project, name="increase", pattern="increase", label_class="Synergistic"
    )
    response = client.post(
        f"/admin/annotations/rule/{rule.pk}/change/",
        {"pattern": "(a+)+$", "label_class": "Synergistic", "name": "x", "kind": "regex"},
    )
    assert response.status_code == 403
    rule.refresh_from_db()
    assert rule.pattern == "increase"


def test_a_rule_deleted_in_the_admin_goes_through_the_rules_service(
    client, root_rosa, project, monkeypatch
):
    from annotations import admin as annotations_admin

    rule = Rule.objects.create(
        project=project, name="increase", pattern="increase", label_class="Synergistic"
    )
    deleted = []
    original = annotations_admin.delete_rule

    def recording_delete_rule(*, rule, user=None):
        deleted.append((rule.pk, user))
        original(rule=rule, user=user)

    monkeypatch.setattr(annotations_admin, "delete_rule", recording_delete_rule)
    response = client.post(f"/admin/annotations/rule/{rule.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert deleted == [(rule.pk, root_rosa)]
    assert not Rule.objects.filter(pk=rule.pk).exists()
