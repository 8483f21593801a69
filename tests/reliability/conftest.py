"""Reliability and security suite (RELIABILITY.md scenarios). Fixtures and helpers shared by
the files in this folder; `postgres`-marked tests run in `make test`'s second pass (tests/conftest.py)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
# Long variants (`make chaos` sets DDI_CHAOS_LONG=1): the same tests with bigger sizes.
LONG = os.environ.get("DDI_CHAOS_LONG") == "1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The (test) database this process uses, as a DATABASE_URL for a server subprocess."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("postgresql"):
        user = db.get("USER") or "postgres"
        return f"postgres://{user}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    raise RuntimeError("live-server tests run on PostgreSQL (mark them `postgres`)")


class LiveServer:
    """gunicorn serving the app on 127.0.0.1 against the test database, in its own session."""

    def __init__(self, tmp: Path, *, workers: int = 2, threads: int = 4, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "gunicorn.log"
        base = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DDI_TEST", "PYTEST", "DATABASE_", "CELERY_"))
        }
        base.update(
            DATABASE_URL=database_url(),
            DDI_VAR_DIR=str(tmp / "var"),
            DB_APPLICATION_NAME="ddi-reliability-web",
            CELERY_BROKER_URL=env.pop("CELERY_BROKER_URL", "filesystem://"),
            DEBUG="false",
            PYTHONUNBUFFERED="1",
            **env,
        )
        command = [
            str(Path(sys.executable).parent / "gunicorn"),
            "ddi_site.wsgi",
            "-b",
            f"127.0.0.1:{self.port}",
            "-w",
            str(workers),
            "--threads",
            str(threads),
            "--timeout",
            "120",
            "--access-logfile",
            "-",
        ]
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=base,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                requests.get(f"{self.url}/accounts/login/", timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise AssertionError(f"gunicorn did not start:\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def worker_pids(self) -> list[int]:
        import psutil

        return [child.pid for child in psutil.Process(self.process.pid).children()]

    def stop(self) -> None:
        import signal

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def live_gunicorn(transactional_db, tmp_path):
    """start(**env) -> a running LiveServer on the test database; stopped after the test.

    Transactional tests flush the tables, the role groups of the data migration included:
    they are put back first, so persona fixtures requested after this one work."""
    restore_migration_data()
    servers: list[LiveServer] = []

    def start(**env) -> LiveServer:
        server = LiveServer(tmp_path, **env)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


def restore_migration_data() -> None:
    """Recreate the data migration's rows (role groups, default project) after a flush."""
    from importlib import import_module

    from django.apps import apps

    import_module("annotations.migrations.0002_roles_and_default_project").create(apps, None)


@pytest.fixture(scope="session")
def chromium(browser):
    """Debian's Chromium through Playwright: the session's one browser (tests/conftest.py)."""
    return browser


def on_postgres() -> bool:
    return django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


# --- Every HTML page of the URL conf ----------------------------------------------------------
# Path converters in annotations/urls.py are named after the object they load.
_PARAM_OBJECTS = {
    "project_pk": "project",
    "pk": None,  # by the route's name: interaction, run or rule
}
_PK_BY_ROUTE = {
    "review_item": "interaction",
    "review_action": "interaction",
    "review_skip": "interaction",
    "run_detail": "run",
    "run_progress": "run",
    "run_cancel": "run",
    "rule_edit": "rule",
    "adjudication": "adjudication",
    "flag_label": "interaction",
    "flag_return": "interaction",
}


# django.contrib.auth's password-reset link: a wrong one renders the "invalid link" page.
_LITERAL_PARAMS = {"uidb64": "MQ", "token": "set-password"}


def _walk(patterns, prefix=""):
    from django.urls import URLPattern, URLResolver

    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


def app_page_urls(objects: dict) -> list[str]:
    """Concrete GET urls of every route of the web app (not /api/, not /admin/), with the
    ids of `objects` ({"project": ..., "interaction": ..., "run": ..., "rule": ...}) filled in.
    Fails loudly on a route with a parameter it cannot fill, so new pages are not missed."""
    import re

    from django.urls import get_resolver

    urls = []
    for route, entry in _walk(get_resolver().url_patterns):
        if route.startswith(("api/", "admin/")):
            continue
        params = re.findall(r"<(?:\w+:)?(\w+)>", route)
        values = {}
        for param in params:
            if param in _LITERAL_PARAMS:
                values[param] = _LITERAL_PARAMS[param]
                continue
            kind = _PARAM_OBJECTS.get(param, "?")
            if kind is None:
                kind = _PK_BY_ROUTE.get(entry.name or "", "?")
            assert kind in objects, f"route {route!r} ({entry.name}): no object for <{param}>"
            values[param] = str(objects[kind].pk)
        path = route
        for param, value in values.items():
            path = re.sub(rf"<(?:\w+:)?{param}>", str(value), path)
        urls.append("/" + path)
    return urls


def admin_page_urls(objects_by_model: dict) -> list[str]:
    """The admin index, every registered model's changelist and add page, and the change page
    of one object per model given in objects_by_model ({ModelClass: instance})."""
    from django.contrib import admin
    from django.urls import NoReverseMatch, reverse

    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        meta = model._meta
        for view in ("changelist", "add"):
            with contextlib.suppress(NoReverseMatch):
                urls.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}"))
        instance = objects_by_model.get(model)
        if instance is not None:
            urls.append(
                reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[instance.pk])
            )
    return urls


@pytest.fixture
def fresh_throttles():
    """The DRF per-client throttle keeps its counts in the cache: start and end clean."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
