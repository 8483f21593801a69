"""Scenario 14: schemathesis over the whole API per role (reviewer, curator, admin, anonymous)
with the `--checks all` equivalent of the Python API: the suite's one schemathesis run.

For every operation of the OpenAPI schema, generated requests (plus ones aimed at real objects
for detail operations) must never get a server error, every documented response must match its
schema, status code, content type and headers, negative data is rejected, a request without the
token is refused (ignored auth), unsupported methods answer 405. Each role is its own test, so
the database is reset between roles (pytest-django rolls each test back). CI: a few examples per
operation; DDI_CHAOS_LONG=1: many more.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from annotations.models import Adjudication, Label, Prediction, ReviewTask, Rule, Run
from annotations.tokens import issue_token
from ddi_site.wsgi import application
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory
from tests.reliability.conftest import LONG

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# 8 in CI: as many per operation as the separate core-check run of the logged-in roles had.
MAX_EXAMPLES = 60 if LONG else 8
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    missing_required_header,
    unsupported_method,
]
AUTH_CHECKS = [ignored_auth]


@pytest.fixture
def keep_test_connection():
    """The WSGI app would close the DB connection after each request (and with it the test's
    transaction on PostgreSQL); Django's own test client disconnects the same handlers."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(project, keep_test_connection):
    version = ModelVersionFactory(project=project, is_active=True)
    for n in range(3):
        interaction = InteractionFactory(project=project)
        PredictionFactory(interaction=interaction, model_version=version)
        if n:
            Label.objects.create(interaction=interaction, label_class="Synergistic", source="seed")
    rule = Rule.objects.create(
        project=project, name="r", pattern="increase", label_class="Synergistic"
    )
    run = Run.objects.create(project=project, kind="train")
    task = ReviewTask.objects.create(interaction=interaction, kind=ReviewTask.Kind.AUDIT)
    adjudication = Adjudication.objects.create(interaction=interaction)
    # Real ids per path prefix, so detail operations reach real objects, not only 404s.
    return {
        "/api/projects/": project.pk,
        "/api/interactions/": interaction.pk,
        "/api/labels/": Label.objects.first().pk,
        "/api/predictions/": Prediction.objects.first().pk,
        "/api/rules/": rule.pk,
        "/api/runs/": run.pk,
        "/api/review-tasks/": task.pk,
        "/api/adjudications/": adjudication.pk,
    }


def _fuzz(headers: dict, ids: dict, checks: list) -> tuple[list[str], int]:
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    failures, calls = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        strategies = [operation.as_strategy()]
        if "{id}" in operation.path:
            prefix = next((p for p in ids if operation.path.startswith(p)), "/api/projects/")
            strategies.append(operation.as_strategy(path_parameters={"id": ids[prefix]}))
        for strategy in strategies:

            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def check(case):
                nonlocal calls
                cache.clear()  # throttles: a 429 would hide what the case really gets
                calls += 1
                case.call_and_validate(headers=headers, checks=checks)

            try:
                check()
            except Exception as exc:  # collect every operation's failure, report them together
                failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:1500]}")
    return failures, calls


@pytest.mark.parametrize("persona", ["reviewer_rita", "curator_carl", "admin_ada"])
def test_every_check_passes_for_each_logged_in_role(request, persona, seeded):
    user = request.getfixturevalue(persona)
    headers = {"Authorization": f"Token {issue_token(user)}"}

    failures, calls = _fuzz(headers, seeded, CHECKS + AUTH_CHECKS)

    print(f"schemathesis {persona}: {calls} generated requests")
    assert not failures, "\n\n".join(failures)


def test_every_check_passes_for_anonymous_clients(seeded):
    failures, calls = _fuzz({}, seeded, CHECKS)

    print(f"schemathesis anonymous: {calls} generated requests")
    assert not failures, "\n\n".join(failures)
