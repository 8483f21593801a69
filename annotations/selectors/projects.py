"""Which projects a user may see. Every list and detail read (web and API) starts here."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from annotations.models import Project
from annotations.roles import Role, get_role, has_role


def list_visible_projects(user: AbstractBaseUser | AnonymousUser | None) -> QuerySet[Project]:
    """Projects the user may read: admins see all; other role holders see the non-restricted
    projects plus the restricted ones they are members of; users without a role see none."""
    if get_role(user) is None:
        return Project.objects.none()
    if has_role(user, Role.ADMIN):
        return Project.objects.all()
    # distinct(): the members join would otherwise repeat a project once per matching member row.
    return Project.objects.filter(Q(is_restricted=False) | Q(members=user)).distinct()
