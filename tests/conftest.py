"""Shared fixtures: the default project and one persona per role (explicit, never autouse)."""

from __future__ import annotations

import pytest

from annotations.models import DEFAULT_GUIDELINE, DEFAULT_PROJECT_NAME, Project
from annotations.roles import Role
from tests.factories import UserFactory


@pytest.fixture
def project(db) -> Project:
    """The default project created by the data migration (DrugBank DDI, two classes).

    get_or_create, because a transactional test earlier in the session flushes every table,
    the migration's rows included.
    """
    project, _ = Project.objects.get_or_create(
        name=DEFAULT_PROJECT_NAME,
        defaults={"label_classes": ["Synergistic", "Antagonistic"], "guideline": DEFAULT_GUIDELINE},
    )
    return project


@pytest.fixture
def reviewer_rita(db):
    return UserFactory(username="rita", role=Role.REVIEWER)


@pytest.fixture
def reviewer_rob(db):
    return UserFactory(username="rob", role=Role.REVIEWER)


@pytest.fixture
def curator_carl(db):
    return UserFactory(username="carl", role=Role.CURATOR)


@pytest.fixture
def admin_ada(db):
    return UserFactory(username="ada", role=Role.ADMIN)


@pytest.fixture
def outsider(db):
    """Logged in, but holds no role."""
    return UserFactory(username="oscar")
