"""Browser tests: pytest-django's live_server + Playwright driving Debian's Chromium, and a real
Celery worker process for the jobs started from the browser.

The worker is another process, so it must see the live server's database: on PostgreSQL that is
the test database itself; on SQLite the test database is moved from memory to a temporary file
(below, at import time, before pytest-django creates it). Jobs travel through a private
filesystem broker in a temporary folder, so no other worker on this machine can take them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

# Playwright's sync API runs an event loop in the test thread; the ORM calls made by the test
# body between browser steps are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

_default_db = settings.DATABASES["default"]
if _default_db["ENGINE"].endswith("sqlite3") and not (_default_db.get("TEST") or {}).get("NAME"):
    _default_db.setdefault("TEST", {})["NAME"] = str(
        Path(tempfile.gettempdir()) / f"ddi-browser-test-{os.getpid()}.sqlite3"
    )

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
# The session's Chromium is the `browser` fixture of tests/conftest.py.
from tests.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402,F401  (kept for importers)

PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory's password


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def login(browser, live_server) -> Iterator[Callable]:
    """login(user) -> a Page in a fresh browser context, logged in through the login form."""
    contexts = []

    def _login(user, *, width: int = 1280, height: int = 900):
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/projects/**")
        return page

    yield _login
    for context in contexts:
        context.close()


def _database_url() -> str:
    """The live server's (test) database as a DATABASE_URL for another process."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    if db["ENGINE"].endswith("postgresql"):
        user = db.get("USER") or "postgres"
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        host = db.get("HOST") or "127.0.0.1"
        port = db.get("PORT") or 5432
        return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"
    raise RuntimeError(f"no worker support for database engine {db['ENGINE']}")


@pytest.fixture
def celery_worker(live_server) -> Iterator[subprocess.Popen]:
    """A real `celery worker` process on a private filesystem broker and the test database."""
    from tests.harness.environment import celery_broker

    var_dir = Path(tempfile.mkdtemp(prefix="ddi-browser-worker-"))
    broker_dir = var_dir / "broker"
    for sub in ("queue", "processed"):
        (broker_dir / sub).mkdir(parents=True)
    options = {
        "data_folder_in": str(broker_dir / "queue"),
        "data_folder_out": str(broker_dir / "queue"),
        "processed_folder": str(broker_dir / "processed"),
        "store_processed": False,
    }
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "DDI_VAR_DIR": str(var_dir),
        "CELERY_BROKER_URL": "filesystem://",
        "DDI_BACKBONE": "tiny-random-bert",
        "DB_APPLICATION_NAME": "ddi-browser-worker",
    }
    env.pop("DDI_TEST_DB_NAME", None)
    log_path = var_dir / "worker.log"
    with log_path.open("wb") as log, celery_broker("filesystem://", options):
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "ddi_site",
                "worker",
                "--pool=solo",
                "--queues=default,training,inference",
                "--loglevel=INFO",
                f"--hostname=browser-{os.getpid()}@%h",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 90
            while b" ready." not in log_path.read_bytes():
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "celery worker did not start:\n" + log_path.read_text(errors="replace")
                    )
                time.sleep(0.3)
            worker.log_path = log_path
            yield worker
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            shutil.rmtree(var_dir, ignore_errors=True)


def _restore_migration_data() -> None:
    """Recreate what the data migration made (role groups, default project); idempotent.

    Browser tests are transactional, and the flush that ends each one also empties the rows
    migrations created. serialized_rollback is asked for on the tests, but the test database's
    serialized copy is not always there in a mixed session, so the rows are rebuilt here.
    """
    from importlib import import_module

    from django.apps import apps

    import_module("annotations.migrations.0002_roles_and_default_project").create(apps, None)
    from annotations.roles import grant_admin_permissions

    grant_admin_permissions()  # what 0004 granted (flush re-creates the permissions themselves)


@pytest.fixture
def project(transactional_db):
    from annotations.models import DEFAULT_PROJECT_NAME, Project

    _restore_migration_data()
    return Project.objects.get(name=DEFAULT_PROJECT_NAME)


def _persona(username: str, role):
    from tests.factories import UserFactory

    return UserFactory(username=username, role=role)


@pytest.fixture
def reviewer_rita(project):
    from annotations.roles import Role

    return _persona("rita", Role.REVIEWER)


@pytest.fixture
def reviewer_rob(project):
    from annotations.roles import Role

    return _persona("rob", Role.REVIEWER)


@pytest.fixture
def admin_ada(project):
    from annotations.roles import Role

    return _persona("ada", Role.ADMIN)
