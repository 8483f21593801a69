"""Small shared pieces of the web views: project lookup with visibility, page context."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from annotations.models import Interaction, Project
from annotations.roles import get_role
from annotations.selectors.projects import list_visible_projects


def get_visible_project(request: HttpRequest, pk: int) -> Project:
    """The project if this user may see it; 404 otherwise (a restricted project stays hidden)."""
    return get_object_or_404(list_visible_projects(request.user), pk=pk)


def visible_interactions(request: HttpRequest) -> QuerySet[Interaction]:
    return Interaction.objects.select_related("project").filter(
        project__in=list_visible_projects(request.user)
    )


def page_context(
    request: HttpRequest, nav_project: Project | None, nav: str, **extra: object
) -> dict[str, object]:
    """Context every full page needs for the layout (nav, project name, the user's role)."""
    role = get_role(request.user)
    return {
        "nav": nav,
        "nav_project": nav_project,
        "project": nav_project,
        "user_role": role.value if role else "",
        **extra,
    }
