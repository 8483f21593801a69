"""Property-based API fuzzing with schemathesis: for each role, every operation of the OpenAPI
schema gets generated requests; none may answer 5xx, and every documented response must match
its schema and content type."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from annotations.models import Adjudication, Label, Prediction, ReviewTask, Rule, Run
from annotations.tokens import issue_token
from ddi_site.wsgi import application
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

MAX_EXAMPLES = 8
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


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


def _strategies(operation, ids: dict):
    yield operation.as_strategy()
    if "{id}" in operation.path:
        prefix = next(p for p in ids if operation.path.startswith(p))
        yield operation.as_strategy(path_parameters={"id": ids[prefix]})


def _fuzz(schema, token: str, ids: dict) -> list[str]:
    headers = {"Authorization": f"Token {token}"}
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for strategy in _strategies(operation, ids):
            failures += _run(operation, strategy, headers)
    return failures


def _run(operation, strategy, headers) -> list[str]:
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    try:
        check()
    except Exception as exc:  # collect every operation's failure, report them together
        return [f"{operation.label}: {type(exc).__name__}: {str(exc)[:800]}"]
    return []


@pytest.mark.parametrize("persona", ["reviewer_rita", "curator_carl", "admin_ada"])
def test_fuzzed_requests_never_get_a_server_error_or_an_off_schema_answer(request, persona, seeded):
    user = request.getfixturevalue(persona)
    token = issue_token(user)
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)

    assert _fuzz(schema, token, seeded) == []
