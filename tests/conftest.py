"""Shared fixtures: the default project and one persona per role (explicit, never autouse)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from annotations.models import DEFAULT_GUIDELINE, DEFAULT_PROJECT_NAME, Project
from annotations.roles import Role
from tests.factories import UserFactory
from tests.harness.data import train_tiny_artifact
from tests.harness.environment import configure_test_environment

configure_test_environment()

# `make test` runs two pytest-xdist processes. Each test file that starts Celery workers is one
# unit of work that a single process runs in order: its tests share the file's workers, broker and
# timings. Files differ in everything two processes could fight over (each xdist process has its
# own test database, the chaos files start a private broker on a free port, the pseudo-labeling
# workers file is the only one on the e2e Redis database, the load test and the embedded-worker
# test have a Redis database or a filesystem broker of their own), so two such files run side by
# side, and the largest units are handed out first.
# xdist's own `--dist loadgroup` cannot do this under pytest 9: it renames items through
# `_nodeid`, an attribute pytest 9 no longer reads, so the groups silently fall apart.
SERIAL_PATHS = ("tests/e2e/test_chaos_", "tests/e2e/test_pseudolabel_workers.py")


def _on_postgres() -> bool:
    return django_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


# Tests marked `postgres` (real Celery workers, concurrency, chaos) need PostgreSQL and Redis.
# `make test` runs them as a second plain pytest pass against DATABASE_URL (default: the local
# PostgreSQL); a run on SQLite deselects them and says so in its header, never skips them.
def pytest_report_header(config):
    if not _on_postgres():
        return (
            "database: SQLite; tests marked `postgres` are deselected here: `make test` runs "
            "them in its second pass (DATABASE_URL=postgres://... pytest -m postgres)"
        )
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    if not _on_postgres():
        needs_postgres = [item for item in items if item.get_closest_marker("postgres")]
        if needs_postgres:
            config.hook.pytest_deselected(items=needs_postgres)
            items[:] = [item for item in items if not item.get_closest_marker("postgres")]
    items.sort(key=_slow_first)


def _database_use(item) -> int:
    """0: no database, 1: rolled-back transactions, 2: transactional (flushes the tables)."""
    fixtures = getattr(item, "fixturenames", ())
    marker = item.get_closest_marker("django_db")
    if "transactional_db" in fixtures or "live_server" in fixtures:
        return 2
    if marker is not None and marker.kwargs.get("transaction"):
        return 2
    return 1 if marker is not None or "db" in fixtures else 0


# Slow tests first, so the xdist processes start on the long ones and end on short ones instead
# of one process finishing a two-minute test alone (measured: the DDI-2013 budget run, which
# needs no database and so came last in pytest-django's order, left a core idle for ~100 s).
# pytest-django (tryfirst) has already put the transactional tests after the others (they flush
# the tables, migration data included): that order is kept; only tests without a database
# move, and slow tests lead inside each group.
def _slow_first(item) -> tuple[int, bool]:
    slow = item.get_closest_marker("slow") is not None
    use = _database_use(item)
    return (0 if use == 0 and slow else {1: 1, 2: 2, 0: 3}[use], not slow)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SerialGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            # One scope per workers file (its path), one per test elsewhere.
            return nodeid.split("::", 1)[0] if nodeid.startswith(SERIAL_PATHS) else nodeid

    return SerialGroupScheduling(config, log)


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory) -> Path:
    """One tiny trained model version folder per test session (per xdist process), for the tests
    that only need a model: they read it (Predictor.load, ready_version) and copy it before
    changing anything in it."""
    return train_tiny_artifact(tmp_path_factory.mktemp("tiny-model") / "v1")


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
