"""The Schedule page: an admin sets when a project retrains; beat and the policy hold it."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from annotations.models import RetrainPolicy, Run
from annotations.roles import grant_admin_permissions
from annotations.services.jobs.schedules import (
    SCHEDULED_RETRAIN_TASK,
    ScheduleMode,
    get_project_schedule,
    trigger_scheduled_retrain,
)


def _post(client, project, **data):
    return client.post(reverse("annotations:schedule", args=[project.pk]), data)


def test_a_nightly_schedule_set_on_the_page_is_a_beat_periodic_task(client, project, admin_ada):
    client.force_login(admin_ada)
    response = _post(
        client,
        project,
        mode="nightly",
        time="03:30",
        weekday="1",
        min_new_reviews="50",
        include_pseudo_labels_above="0.9",
    )
    assert response.status_code == 302
    task = PeriodicTask.objects.get(task=SCHEDULED_RETRAIN_TASK)
    assert task.enabled and json.loads(task.args) == [project.pk]
    assert (task.crontab.hour, task.crontab.minute, task.crontab.day_of_week) == ("3", "30", "*")
    assert RetrainPolicy.objects.get(project=project).include_pseudo_labels_above == 0.9

    page = client.get(reverse("annotations:schedule", args=[project.pk])).content.decode()
    assert "Every night at 03:30 (UTC)" in page
    assert "also on pseudo-labels above 0.9" in page
    assert 'id="schedule-next"><time' in page  # the next planned run is a date


def test_a_schedule_edited_in_the_django_admin_shows_on_the_page(project):
    crontab = CrontabSchedule.objects.create(minute="15", hour="4", day_of_week="5", timezone="UTC")
    PeriodicTask.objects.create(
        name="made in the admin",
        task=SCHEDULED_RETRAIN_TASK,
        crontab=crontab,
        args=json.dumps([project.pk]),
    )
    schedule = get_project_schedule(project=project)
    assert (schedule.mode, schedule.weekday, schedule.hour, schedule.minute) == (
        ScheduleMode.WEEKLY,
        5,
        4,
        15,
    )
    assert schedule.next_run_at is not None and schedule.next_run_at.weekday() == 4  # Friday


def test_after_n_reviews_switches_the_time_schedule_off_and_off_switches_both(
    client, project, admin_ada
):
    client.force_login(admin_ada)
    _post(client, project, mode="weekly", time="02:00", weekday="1", min_new_reviews="50")
    _post(client, project, mode="reviews", time="02:00", weekday="1", min_new_reviews="20")
    policy = RetrainPolicy.objects.get(project=project)
    assert policy.enabled and policy.min_new_reviews == 20
    assert not PeriodicTask.objects.get(task=SCHEDULED_RETRAIN_TASK).enabled
    assert PeriodicTask.objects.filter(task="annotations.check_retrain_policies").exists()
    page = client.get(reverse("annotations:schedule", args=[project.pk])).content.decode()
    assert "After 20 new reviews" in page and "0 so far" in page

    _post(client, project, mode="off", time="02:00", weekday="1", min_new_reviews="20")
    assert not RetrainPolicy.objects.get(project=project).enabled
    assert get_project_schedule(project=project).mode == ScheduleMode.OFF


def test_a_bad_value_is_refused_with_its_field_and_changes_nothing(client, project, admin_ada):
    client.force_login(admin_ada)
    response = _post(
        client, project, mode="nightly", time="25:00", weekday="1", min_new_reviews="0"
    )
    assert response.status_code == 422
    assert "Enter a valid time." in response.content.decode()
    assert not PeriodicTask.objects.filter(task=SCHEDULED_RETRAIN_TASK).exists()


@pytest.mark.parametrize("persona", ["curator_carl", "reviewer_rita"])
def test_only_admins_see_the_schedule_page(client, project, persona, request):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(reverse("annotations:schedule", args=[project.pk])).status_code == 403


def test_the_scheduled_retrain_uses_the_policy_threshold_and_the_page_shows_its_outcome(
    client, project, admin_ada
):
    client.force_login(admin_ada)
    _post(
        client,
        project,
        mode="nightly",
        time="02:00",
        weekday="1",
        min_new_reviews="50",
        include_pseudo_labels_above="0.8",
    )
    run = trigger_scheduled_retrain(project_id=project.pk)
    assert run.params == {"include_pseudo_labels_above": 0.8}
    Run.objects.filter(pk=run.pk).update(
        state=Run.State.SUCCEEDED, result={"promotion_decision": "promoted: no active version yet"}
    )
    page = client.get(reverse("annotations:schedule", args=[project.pk])).content.decode()
    assert f"run {run.pk}</a>" in page
    assert "succeeded (promoted: no active version yet)" in page


def test_an_admin_sees_periodic_tasks_users_and_policies_in_the_django_admin(client, admin_ada):
    grant_admin_permissions()  # what the migration and setup_demo do
    admin_ada.is_staff = True
    admin_ada.save()
    client.force_login(admin_ada)
    index = client.get("/admin/").content.decode()
    for model in ("Periodic tasks", "Users", "Groups", "Retrain policys"):
        assert model in index
    assert client.get("/admin/django_celery_beat/periodictask/add/").status_code == 200
    # Labels and runs change only through the services: no admin permission for them.
    assert client.get("/admin/annotations/label/").status_code == 403
    assert client.get("/admin/annotations/run/").status_code == 403
