"""The Schedule page (Admin only): when a project retrains by itself, and on which labels."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from annotations.forms import ScheduleForm
from annotations.roles import Role
from annotations.services.jobs import schedules as scheduling
from annotations.views.access import role_required
from annotations.views.common import get_visible_project, page_context


def _initial(schedule: scheduling.ProjectSchedule) -> dict:
    return {
        "mode": schedule.mode.value,
        "weekday": schedule.weekday,
        "time": f"{schedule.hour:02d}:{schedule.minute:02d}",
        "min_new_reviews": schedule.min_new_reviews,
        "include_pseudo_labels_above": schedule.include_pseudo_labels_above,
    }


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def schedule_page(request: HttpRequest, project_pk: int) -> HttpResponse:
    project = get_visible_project(request, project_pk)
    schedule = scheduling.get_project_schedule(project=project)
    form = ScheduleForm(
        request.POST if request.method == "POST" else None, initial=_initial(schedule)
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        scheduling.save_project_schedule(
            project=project,
            mode=scheduling.ScheduleMode(data["mode"]),
            hour=data["time"].hour,
            minute=data["time"].minute,
            weekday=data["weekday"],
            min_new_reviews=data["min_new_reviews"],
            include_pseudo_labels_above=data["include_pseudo_labels_above"],
        )
        messages.success(request, "Schedule saved.")
        return redirect("annotations:schedule", project.pk)
    status = 422 if request.method == "POST" else 200
    context = page_context(
        request,
        project,
        "schedule",
        form=form,
        schedule=schedule,
    )
    return render(request, "annotations/schedule.html", context, status=status)
