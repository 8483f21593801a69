"""Shared fixtures: the default project and one persona per role (explicit, never autouse)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings as hypothesis_settings

from annotations.models import DEFAULT_GUIDELINE, DEFAULT_PROJECT_NAME, Project
from annotations.roles import Role
from tests.factories import UserFactory

# Property tests are reproducible run to run (CI must not find a new example by chance) and have
# no per-example deadline: a loaded 2-core machine is not a bug. DDI_HYPOTHESIS_PROFILE=explore
# turns randomness back on.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
hypothesis_settings.register_profile("explore", deadline=None)
hypothesis_settings.load_profile(os.environ.get("DDI_HYPOTHESIS_PROFILE", "ci"))


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


CHROMIUM = os.environ.get("DDI_CHROMIUM", "/usr/bin/chromium")  # Debian's package
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session, shared by tests/browser and tests/reliability:
    two sync_playwright() sessions in one thread collide ("Sync API inside the asyncio loop")."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in the test thread; the ORM calls a test makes
    # between browser steps are still plain synchronous code.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()
