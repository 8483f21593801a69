"""Roles are Django groups with a rank: Reviewer < Curator < Admin. A higher role can do all
that a lower one can. Superusers count as Admin."""

from __future__ import annotations

from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


class Role(StrEnum):
    REVIEWER = "Reviewer"
    CURATOR = "Curator"
    ADMIN = "Admin"


ROLE_RANK = {Role.REVIEWER: 1, Role.CURATOR: 2, Role.ADMIN: 3}


def get_role(user: AbstractBaseUser | AnonymousUser | None) -> Role | None:
    """The highest role a user holds, or None (anonymous users and users without a role)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    names = set(user.groups.values_list("name", flat=True))
    held = [role for role in Role if role.value in names]
    return max(held, key=ROLE_RANK.__getitem__) if held else None


def has_role(user: AbstractBaseUser | AnonymousUser | None, role: Role) -> bool:
    """True when the user's role is at least `role`."""
    held = get_role(user)
    return held is not None and ROLE_RANK[held] >= ROLE_RANK[role]


# The Django admin permissions of the Admin group: users and groups (to add reviewers), beat's
# periodic tasks and their schedules (retrain times), retrain policies. Nothing that writes
# labels, predictions or runs: those change only through the services.
ADMIN_PERMISSIONS = {
    "auth": ["user", "group"],
    "django_celery_beat": [
        "periodictask",
        "crontabschedule",
        "intervalschedule",
        "clockedschedule",
        "solarschedule",
    ],
    "annotations": ["retrainpolicy"],
}


def grant_admin_permissions(*, group_model=None, permission_model=None) -> int:
    """Create the role groups and give Admin its admin permissions; the number it holds.

    The models are arguments so the data migration can pass its historical ones. Safe to run
    twice.
    """
    from django.contrib.auth.models import Group, Permission

    group_model = group_model or Group
    permission_model = permission_model or Permission
    for role in Role:
        group_model.objects.get_or_create(name=role.value)
    admin = group_model.objects.get(name=Role.ADMIN.value)
    for app_label, models in ADMIN_PERMISSIONS.items():
        codenames = [f"{a}_{m}" for m in models for a in ("add", "change", "delete", "view")]
        admin.permissions.add(
            *permission_model.objects.filter(
                content_type__app_label=app_label, codename__in=codenames
            )
        )
    return admin.permissions.count()
