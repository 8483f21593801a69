"""API access control: the role matrix generated from the OpenAPI schema, IDOR on restricted
projects, ORM-filter leak probes, CSRF on session writes, throttling and size limits."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from annotations.models import Label, Project, Rule, Run
from annotations.tokens import issue_token
from tests.factories import (
    InteractionFactory,
    ModelVersionFactory,
    PredictionFactory,
    ProjectFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

# Minimum role per operation; None: public. A new endpoint must be added here (the test
# compares this table with the schema), so nobody ships an endpoint without deciding its role.
REQUIRED_ROLE = {
    ("post", "/api/auth/token/"): None,
    ("get", "/api/interactions/"): "reviewer",
    ("get", "/api/interactions/{id}/"): "reviewer",
    ("get", "/api/labels/"): "reviewer",
    ("post", "/api/labels/"): "reviewer",
    ("get", "/api/labels/{id}/"): "reviewer",
    ("put", "/api/labels/{id}/"): "reviewer",
    ("patch", "/api/labels/{id}/"): "reviewer",
    ("get", "/api/predictions/"): "reviewer",
    ("get", "/api/predictions/{id}/"): "reviewer",
    ("get", "/api/projects/"): "reviewer",
    ("get", "/api/projects/{id}/"): "reviewer",
    ("get", "/api/projects/{id}/queue/"): "reviewer",
    ("post", "/api/projects/{id}/queue/next/"): "reviewer",
    ("get", "/api/projects/{id}/imports/"): "curator",
    ("post", "/api/projects/{id}/imports/"): "curator",
    ("get", "/api/projects/{id}/export/"): "curator",
    ("get", "/api/projects/{id}/export/card/"): "curator",
    ("get", "/api/rules/"): "reviewer",
    ("post", "/api/rules/"): "curator",
    ("get", "/api/rules/{id}/"): "reviewer",
    ("patch", "/api/rules/{id}/"): "curator",
    ("delete", "/api/rules/{id}/"): "curator",
    ("post", "/api/rules/preview/"): "curator",
    ("get", "/api/runs/"): "reviewer",
    ("post", "/api/runs/"): "admin",
    ("get", "/api/runs/{id}/"): "reviewer",
    ("post", "/api/runs/{id}/cancel/"): "admin",
    ("get", "/api/review-tasks/"): "reviewer",
    ("get", "/api/review-tasks/{id}/"): "reviewer",
    ("post", "/api/review-tasks/{id}/answer/"): "reviewer",
    ("get", "/api/projects/{id}/audit/"): "reviewer",
    ("post", "/api/projects/{id}/audit/"): "curator",
    ("put", "/api/projects/{id}/audit/auto-accept/"): "curator",
    ("get", "/api/adjudications/"): "curator",
    ("get", "/api/adjudications/{id}/"): "curator",
    ("post", "/api/adjudications/{id}/decide/"): "curator",
}
RANK = {None: 0, "reviewer": 1, "curator": 2, "admin": 3}


def _client(user=None, *, csrf=False) -> APIClient:
    client = APIClient(enforce_csrf_checks=csrf)
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture(autouse=False)
def fresh_throttles():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def world(project, reviewer_rita):
    """One object of each kind in the default (open) project."""
    version = ModelVersionFactory(project=project, is_active=True)
    interaction = InteractionFactory(project=project)
    prediction = PredictionFactory(interaction=interaction, model_version=version)
    label = Label.objects.create(interaction=interaction, label_class="Synergistic", source="seed")
    rule = Rule.objects.create(
        project=project, name="r", pattern="increase", label_class="Synergistic"
    )
    run = Run.objects.create(project=project, kind="train")
    return {
        "project": project,
        "interaction": interaction,
        "prediction": prediction,
        "label": label,
        "rule": rule,
        "run": run,
    }


def _object_id(path: str, world) -> str:
    for prefix, key in (
        ("/api/projects/", "project"),
        ("/api/interactions/", "interaction"),
        ("/api/labels/", "label"),
        ("/api/predictions/", "prediction"),
        ("/api/rules/", "rule"),
        ("/api/runs/", "run"),
    ):
        if path.startswith(prefix):
            return path.replace("{id}", str(world[key].pk))
    return path


def _operations() -> set[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {(method, path) for path, item in schema["paths"].items() for method in item}


def test_every_api_operation_has_a_required_role_in_the_matrix():
    assert _operations() == set(REQUIRED_ROLE)


def test_the_permission_matrix_matches_the_roles(
    world, reviewer_rita, curator_carl, admin_ada, outsider, fresh_throttles
):
    personas = {
        "anonymous": (None, -1),
        "outsider": (outsider, 0),
        "reviewer": (reviewer_rita, 1),
        "curator": (curator_carl, 2),
        "admin": (admin_ada, 3),
    }
    failures = []
    for (method, path), required in sorted(REQUIRED_ROLE.items()):
        url = _object_id(path, world)
        for name, (user, rank) in personas.items():
            response = getattr(_client(user), method)(url, {}, format="json")
            got = response.status_code
            if required is None:
                ok = got < 500 and got not in (401, 403)
            elif user is None:
                ok = got == 401
            elif rank < RANK[required]:
                ok = got == 403
            else:
                ok = got < 500 and got not in (401, 403)
            if not ok:
                failures.append(f"{method.upper()} {path} as {name}: {got}")
    assert failures == []


@pytest.fixture
def secret(db):
    """A restricted project whose only member is mia; one object of each kind in it."""
    mia = UserFactory(username="mia", role="Reviewer")
    project = ProjectFactory(name="Secret", is_restricted=True)
    project.members.add(mia)
    version = ModelVersionFactory(project=project, is_active=True)
    interaction = InteractionFactory(project=project, drug_a="Secretdrug")
    return {
        "member": mia,
        "project": project,
        "interaction": interaction,
        "prediction": PredictionFactory(interaction=interaction, model_version=version),
        "label": Label.objects.create(
            interaction=interaction, label_class="Synergistic", source="seed"
        ),
        "rule": Rule.objects.create(
            project=project, name="s", pattern="increase", label_class="Synergistic"
        ),
        "run": Run.objects.create(project=project, kind="train"),
    }


DETAILS = [
    ("/api/projects/{id}/", "project"),
    ("/api/projects/{id}/queue/", "project"),
    ("/api/interactions/{id}/", "interaction"),
    ("/api/labels/{id}/", "label"),
    ("/api/predictions/{id}/", "prediction"),
    ("/api/rules/{id}/", "rule"),
    ("/api/runs/{id}/", "run"),
]
LISTS = [
    ("/api/projects/", "project"),
    ("/api/interactions/", "interaction"),
    ("/api/labels/", "label"),
    ("/api/predictions/", "prediction"),
    ("/api/rules/", "rule"),
    ("/api/runs/", "run"),
]


def test_a_restricted_project_is_a_404_and_absent_from_lists_for_non_members(secret, admin_ada):
    """rob holds the Admin-less Curator role: enough for everything, but not a member."""
    rob = UserFactory(username="rob2", role="Curator")
    client = _client(rob)
    for path, key in DETAILS:
        assert client.get(path.replace("{id}", str(secret[key].pk))).status_code == 404, path
    for path, key in LISTS:
        ids = [item["id"] for item in client.get(path).json()["results"]]
        assert secret[key].pk not in ids, path
    pk = secret["project"].pk
    assert client.get(f"/api/projects/{pk}/export/").status_code == 404
    assert client.get(f"/api/interactions/?project={pk}").json()["results"] == []
    assert (
        client.patch(
            f"/api/labels/{secret['label'].pk}/",
            {"label_class": "Antagonistic", "version": 1},
            format="json",
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/api/labels/",
            {"interaction": secret["interaction"].pk, "label_class": "Antagonistic"},
            format="json",
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/api/rules/",
            {"project": pk, "pattern": "x+", "label_class": "Synergistic"},
            format="json",
        ).status_code
        == 404
    )
    assert client.delete(f"/api/rules/{secret['rule'].pk}/").status_code == 404
    assert Rule.objects.filter(pk=secret["rule"].pk).exists()


def test_members_and_admins_see_the_restricted_project(secret, admin_ada):
    for user in (secret["member"], admin_ada):
        client = _client(user)
        for path, key in DETAILS:
            assert client.get(path.replace("{id}", str(secret[key].pk))).status_code == 200, path


@pytest.mark.parametrize(
    "query",
    [
        "ordering=label__author__password",
        "ordering=-project__members__password",
        "ordering=description,label__author__password",
        "label__author__password__startswith=pbkdf2",
        "project__members__password__startswith=x",
        "search=%00",
    ],
)
def test_orm_lookups_in_query_strings_leak_nothing(query, project, reviewer_rita):
    author = UserFactory(username="victim")
    rows = InteractionFactory.create_batch(3, project=project)
    for row in rows:
        Label.objects.create(
            interaction=row, label_class="Synergistic", source="review", author=author
        )

    response = _client(reviewer_rita).get(f"/api/interactions/?{query}")

    assert response.status_code in (200, 400)
    if response.status_code == 200:
        # Unknown keys are ignored: same rows, still in id order, no password anywhere.
        assert [r["id"] for r in response.json()["results"]] == [r.pk for r in rows]
    assert "pbkdf2" not in response.content.decode()


def test_session_writes_need_a_csrf_token_but_token_auth_does_not(world, reviewer_rita):
    session = APIClient(enforce_csrf_checks=True)
    session.force_login(reviewer_rita)
    body = {
        "interaction": InteractionFactory(project=world["project"]).pk,
        "label_class": "Synergistic",
    }

    assert session.post("/api/labels/", body, format="json").status_code == 403
    token = (
        "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6"  # any 32-char secret; the cookie and header must match
    )
    session.cookies["csrftoken"] = token
    assert (
        session.post("/api/labels/", body, format="json", HTTP_X_CSRFTOKEN=token).status_code == 201
    )

    api = APIClient(enforce_csrf_checks=True)
    api.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(reviewer_rita)}")
    body = {
        "interaction": InteractionFactory(project=world["project"]).pk,
        "label_class": "Antagonistic",
    }
    assert api.post("/api/labels/", body, format="json").status_code == 201


def test_token_login_works_and_is_throttled_per_client(reviewer_rita, fresh_throttles):
    client = APIClient()
    good = client.post(
        "/api/auth/token/", {"username": "rita", "password": "correct horse battery staple"}
    )
    assert good.status_code == 200 and good.json()["token"]
    statuses = [
        client.post("/api/auth/token/", {"username": "rita", "password": f"guess{n}"}).status_code
        for n in range(12)
    ]
    assert statuses[:9] == [400] * 9
    assert statuses[-1] == 429


def test_anonymous_requests_are_throttled(fresh_throttles):
    client = APIClient()
    statuses = {client.get("/api/projects/").status_code for _ in range(65)}
    assert statuses == {401, 429}


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_oversized_json_bodies_are_refused_before_parsing(world, reviewer_rita):
    client = _client(reviewer_rita)
    body = json.dumps(
        {"interaction": world["interaction"].pk, "note": "x" * 5000, "label_class": "Synergistic"}
    )

    response = client.post("/api/labels/", body, content_type="application/json")

    assert response.status_code in (400, 413)
    assert Label.objects.get(pk=world["label"].pk).version == 1


def test_the_schema_and_the_vendored_swagger_ui_are_served_without_a_cdn(client):
    schema = client.get("/api/schema/")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200 and b"/api/interactions/" in schema.content
    assert docs.status_code == 200
    html = docs.content.decode()
    assert (
        "cdn" not in html.lower()
        and "unpkg" not in html
        and "/static/drf_spectacular_sidecar/" in html
    )


def test_projects_list_shows_open_projects_to_reviewers_and_nothing_to_outsiders(
    project, reviewer_rita, outsider
):
    assert [p["name"] for p in _client(reviewer_rita).get("/api/projects/").json()["results"]] == [
        project.name
    ]
    assert _client(outsider).get("/api/projects/").status_code == 403
    assert Project.objects.count() == 1
