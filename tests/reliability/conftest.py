"""Reliability and security suite (RELIABILITY.md scenarios). Fixtures and helpers shared by
the files in this folder; `postgres`-marked tests run in `make test`'s second pass (tests/conftest.py)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from tests.harness.processes import LiveServer

ROOT = Path(__file__).resolve().parents[2]
# Long variants (`make chaos` sets DDI_CHAOS_LONG=1): the same tests with bigger sizes.
LONG = os.environ.get("DDI_CHAOS_LONG") == "1"


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
