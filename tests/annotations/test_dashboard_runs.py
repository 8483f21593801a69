"""Training from the browser (Admin): start with parameters, watch, see the result, cancel."""

from __future__ import annotations

from django.urls import reverse

from annotations.models import Run
from tests.factories import ModelVersionFactory


def test_admin_starts_a_retrain_with_parameters(client, admin_ada, project):
    client.force_login(admin_ada)
    response = client.post(
        reverse("annotations:run_start", args=[project.pk]),
        {
            "kind": "retrain",
            "epochs": 2,
            "learning_rate": 0.0005,
            "lora_r": 4,
            "include_pseudo_labels_above": 0.97,
            "force_promote": "on",
        },
    )
    run = Run.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("annotations:run_detail", args=[run.pk])
    assert (run.kind, run.state, run.created_by) == ("retrain", "queued", admin_ada)
    assert run.params == {
        "epochs": 2,
        "learning_rate": 0.0005,
        "lora_r": 4,
        "include_pseudo_labels_above": 0.97,
        "force_promote": True,
    }


def test_bad_parameters_are_shown_next_to_the_field(client, admin_ada, project):
    client.force_login(admin_ada)
    response = client.post(
        reverse("annotations:run_start", args=[project.pk]),
        {"kind": "train", "epochs": 0, "learning_rate": 0.001, "lora_r": 4},
    )
    assert response.status_code == 422
    assert "Ensure this value is greater than or equal to 1." in response.content.decode()
    assert not Run.objects.exists()


def test_pseudolabel_without_an_active_model_says_what_to_do(client, admin_ada, project):
    client.force_login(admin_ada)
    response = client.post(
        reverse("annotations:run_start", args=[project.pk]),
        {"kind": "pseudolabel", "epochs": 1, "learning_rate": 0.001, "lora_r": 4},
    )
    assert response.status_code == 422
    assert "train one first" in response.content.decode()


def test_progress_partial_polls_while_active_and_stops_with_the_result(client, admin_ada, project):
    client.force_login(admin_ada)
    run = Run.objects.create(
        project=project, kind=Run.Kind.TRAIN, state=Run.State.RUNNING, progress_total=10
    )
    url = reverse("annotations:run_progress", args=[run.pk])
    body = client.get(url).content.decode()
    assert 'hx-trigger="every 1s"' in body and "Cancel run" in body
    version = ModelVersionFactory(
        project=project,
        metrics={"accuracy": 0.91, "macro_f1": 0.9, "n_val": 12, "per_class": {}},
        promotion_decision="promoted: macro F1 0.90 > 0.85 of v1",
    )
    Run.objects.filter(pk=run.pk).update(
        state=Run.State.SUCCEEDED, progress_done=10, model_version=version
    )
    body = client.get(url).content.decode()
    assert "every 1s" not in body
    assert "promoted: macro F1 0.90 &gt; 0.85 of v1" in body
    assert "0.9100" in body and ">12<" in body and "per_class" not in body


def test_cancel_a_queued_run(client, admin_ada, project):
    client.force_login(admin_ada)
    run = Run.objects.create(project=project, kind=Run.Kind.TRAIN)
    response = client.post(reverse("annotations:run_cancel", args=[run.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.state == "cancelled"
    response = client.post(reverse("annotations:run_cancel", args=[run.pk]))
    assert response.status_code == 302  # a second cancel is a readable message, not an error


def test_the_runs_list_names_who_started_each_run_and_whether_it_was_promoted(
    client, admin_ada, project
):
    retrain = Run.objects.create(
        project=project,
        kind=Run.Kind.RETRAIN,
        state=Run.State.SUCCEEDED,
        created_by=admin_ada,
        result={"promoted": True},
    )
    Run.objects.create(
        project=project, kind=Run.Kind.PSEUDOLABEL, parent=retrain, state=Run.State.SUCCEEDED
    )
    Run.objects.create(
        project=project,
        kind=Run.Kind.TRAIN,
        state=Run.State.SUCCEEDED,
        idempotency_key="schedule:retrain:1:2026-12-01T02:00",
        result={"promoted": False},
    )
    Run.objects.create(
        project=project, kind=Run.Kind.RETRAIN, idempotency_key=f"demo:first-model:{project.pk}"
    )
    client.force_login(admin_ada)
    page = client.get(reverse("annotations:runs", args=[project.pk])).content.decode()
    cells = [" ".join(c.split()) for c in page.split("<td>")[1:]]
    started_by = [c.split("</td>")[0] for c in cells[4::5]]
    promotion = [c.split("</td>")[0] for c in cells[3::5]]
    assert started_by == ["setup_demo (the first demo model)", "the scheduler", "ada", "ada"]
    assert promotion == ["—", "not promoted", "—", "promoted"]


def test_the_run_page_names_metrics_in_words_not_field_names(client, admin_ada, project):
    version = ModelVersionFactory(
        project=project,
        metrics={"ece": 0.12, "folds": 5, "evaluated_on": "out-of-fold", "new_thing": 1},
    )
    run = Run.objects.create(
        project=project, kind=Run.Kind.TRAIN, state=Run.State.SUCCEEDED, model_version=version
    )
    client.force_login(admin_ada)
    body = client.get(reverse("annotations:run_progress", args=[run.pk])).content.decode()
    table = body.split('<table class="compact metrics">')[1].split("</table>")[0]
    assert "Calibration error of the served confidence (out of fold)" in table
    assert "Committee members (cross-fitted)" in table and "Score measured on" in table
    assert "New thing" in table
    for field in ("ece", "folds", "evaluated_on", "new_thing"):
        assert field not in table
