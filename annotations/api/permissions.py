"""API role checks, the same ladder as the web app (Reviewer < Curator < Admin).

Object-level scoping is NOT done here: every viewset narrows its queryset to the user's
visible projects in get_queryset(), so an object outside them is a 404, never a 403 (which
would confirm that it exists).
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from annotations.roles import Role, has_role


class _HasRole(BasePermission):
    role: Role
    message = "This needs a role."

    def has_permission(self, request, view) -> bool:
        return has_role(request.user, self.role)


class IsReviewer(_HasRole):
    role = Role.REVIEWER
    message = "This needs the Reviewer role."


class IsCurator(_HasRole):
    role = Role.CURATOR
    message = "This needs the Curator role."


class IsAdmin(_HasRole):
    role = Role.ADMIN
    message = "This needs the Admin role."


class ReviewerReadsCuratorWrites(BasePermission):
    """Reviewers may read; changes need the Curator role (rules)."""

    message = "Changing rules needs the Curator role."

    def has_permission(self, request, view) -> bool:
        role = Role.REVIEWER if request.method in SAFE_METHODS else Role.CURATOR
        return has_role(request.user, role)


class ReviewerReadsAdminWrites(BasePermission):
    """Reviewers may read run status; starting and cancelling runs needs the Admin role."""

    message = "Starting or cancelling runs needs the Admin role."

    def has_permission(self, request, view) -> bool:
        role = Role.REVIEWER if request.method in SAFE_METHODS else Role.ADMIN
        return has_role(request.user, role)
