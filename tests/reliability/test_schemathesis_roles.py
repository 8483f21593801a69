"""Scenario 14: schemathesis over the whole API per role (reviewer, curator, admin, anonymous)
with the `--checks all` equivalent of the Python API.

tests/annotations/test_schemathesis.py fuzzes the three logged-in roles with the three core
checks. This file adds the anonymous role and the remaining single-response checks: status codes
and headers as documented, ignored auth (a request without the token must be refused), negative
data rejected, unsupported methods answered 405. Each role is its own test, so the database is
reset between roles (pytest-django rolls each test back). CI: a few examples per operation;
DDI_CHAOS_LONG=1: many more.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.cache import cache
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

from annotations.tokens import issue_token
from ddi_site.wsgi import application
from tests.annotations.test_schemathesis import keep_test_connection, seeded  # noqa: F401
from tests.reliability.conftest import LONG

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

MAX_EXAMPLES = 60 if LONG else 5
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
def test_every_check_passes_for_each_logged_in_role(request, persona, seeded):  # noqa: F811
    user = request.getfixturevalue(persona)
    headers = {"Authorization": f"Token {issue_token(user)}"}

    failures, calls = _fuzz(headers, seeded, CHECKS + AUTH_CHECKS)

    print(f"schemathesis {persona}: {calls} generated requests")
    assert not failures, "\n\n".join(failures)


def test_every_check_passes_for_anonymous_clients(seeded):  # noqa: F811
    failures, calls = _fuzz({}, seeded, CHECKS)

    print(f"schemathesis anonymous: {calls} generated requests")
    assert not failures, "\n\n".join(failures)
