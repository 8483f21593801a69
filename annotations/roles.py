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
