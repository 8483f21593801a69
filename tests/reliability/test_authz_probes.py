"""Scenario 12: the authorization matrix over two restricted projects, ORM-leak and timing
probes, CSRF on every session write and on login, and API tokens kept out of HTML.

tests/annotations/test_api.py already checks each operation's minimum role on one open project
(its REQUIRED_ROLE table is the source of truth, compared with /api/schema/ there). This file
adds the project axis: roles {anonymous, reviewer-P1, reviewer-P2, curator-P1, admin} x
objects {P1's, P2's} x every schema operation, with real request bodies, each cell in its own
rolled-back transaction.
"""

from __future__ import annotations

import statistics
import time

import pytest
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from rest_framework.test import APIClient

from annotations.models import Adjudication, Label, ReviewTask, Rule, Run
from annotations.tokens import issue_token
from tests.annotations.test_api import RANK, REQUIRED_ROLE, _operations
from tests.factories import (
    InteractionFactory,
    ModelVersionFactory,
    PredictionFactory,
    ProjectFactory,
    UserFactory,
)
from tests.reliability.conftest import app_page_urls

pytestmark = pytest.mark.django_db

SECRET_MARKERS = ("pbkdf2", "password", "sha256$")


def _objects(name: str) -> dict:
    project = ProjectFactory(name=name, is_restricted=True)
    version = ModelVersionFactory(project=project, is_active=True)
    interaction = InteractionFactory(project=project)
    labeled = InteractionFactory(project=project)
    return {
        "project": project,
        "interaction": interaction,
        "prediction": PredictionFactory(interaction=interaction, model_version=version),
        "label": Label.objects.create(
            interaction=labeled, label_class="Synergistic", source=Label.Source.SEED
        ),
        "rule": Rule.objects.create(
            project=project, name=f"{name} rule", pattern="increase", label_class="Synergistic"
        ),
        "run": Run.objects.create(project=project, kind=Run.Kind.TRAIN),
    }


@pytest.fixture
def two_projects(db):
    """P1 and P2, both restricted; reviewer and curator of P1, reviewer of P2, an admin."""
    p1, p2 = _objects("P1"), _objects("P2")
    users = {
        "reviewer-P1": UserFactory(username="rev1", role="Reviewer"),
        "reviewer-P2": UserFactory(username="rev2", role="Reviewer"),
        "curator-P1": UserFactory(username="cur1", role="Curator"),
        "admin": UserFactory(username="adm", role="Admin"),
    }
    p1["project"].members.add(users["reviewer-P1"], users["curator-P1"])
    p2["project"].members.add(users["reviewer-P2"])
    # A blind review row per project, held by that project's reviewer (on an item of its own,
    # so the reviewer's blindness hides none of the other objects).
    for objects, holder in ((p1, users["reviewer-P1"]), (p2, users["reviewer-P2"])):
        objects["review_task"] = ReviewTask.objects.create(
            interaction=InteractionFactory(project=objects["project"]),
            kind=ReviewTask.Kind.AUDIT,
            assignee=holder,
        )
        objects["adjudication"] = Adjudication.objects.create(
            interaction=InteractionFactory(project=objects["project"])
        )
    return {"P1": p1, "P2": p2, "users": users}


# Operations added after test_api.py's table was written (its own test flags them until they are
# added there); an operation in neither table fails the matrix below.
ROLE_TABLE = {
    ("get", "/api/projects/{id}/imports/"): "curator",
    ("post", "/api/projects/{id}/imports/"): "curator",
    ("post", "/api/projects/{id}/queue/next/"): "reviewer",
    **REQUIRED_ROLE,
}
ROLE_OF = {"reviewer-P1": "reviewer", "reviewer-P2": "reviewer", "curator-P1": "curator"}
MEMBER_OF = {"reviewer-P1": {"P1"}, "reviewer-P2": {"P2"}, "curator-P1": {"P1"}}
_PREFIX_OBJECT = (
    ("/api/projects/", "project"),
    ("/api/interactions/", "interaction"),
    ("/api/labels/", "label"),
    ("/api/predictions/", "prediction"),
    ("/api/rules/", "rule"),
    ("/api/runs/", "run"),
    ("/api/review-tasks/", "review_task"),
    ("/api/adjudications/", "adjudication"),
)


def _path(path: str, objects: dict) -> str:
    for prefix, key in _PREFIX_OBJECT:
        if path.startswith(prefix):
            return path.replace("{id}", str(objects[key].pk))
    return path.replace("{id}", str(objects["project"].pk))


def _body(method: str, path: str, objects: dict) -> dict:
    """A valid body for each write, so the only reason to refuse is authorization."""
    project, label = objects["project"].pk, objects["label"]
    bodies = {
        ("post", "/api/labels/"): {
            "interaction": objects["interaction"].pk,
            "label_class": "Antagonistic",
        },
        ("put", "/api/labels/{id}/"): {"label_class": "Antagonistic", "version": label.version},
        ("patch", "/api/labels/{id}/"): {"label_class": "Antagonistic", "version": label.version},
        ("post", "/api/rules/"): {
            "project": project,
            "name": "new",
            "pattern": "decrease",
            "label_class": "Antagonistic",
        },
        ("patch", "/api/rules/{id}/"): {"name": "renamed"},
        ("post", "/api/rules/preview/"): {
            "project": project,
            "pattern": "increase",
            "label_class": "Synergistic",
        },
        ("post", "/api/runs/"): {"project": project, "kind": "train"},
        ("post", "/api/auth/token/"): {"username": "rev1", "password": "wrong"},
    }
    return bodies.get((method, path), {})


def _expected(method: str, path: str, role: str, target: str) -> str:
    required = ROLE_TABLE[(method, path)]
    if required is None:
        return "allowed"
    if role == "anonymous":
        return "401"
    rank = 3 if role == "admin" else RANK[ROLE_OF[role]]
    if rank < RANK[required]:
        return "403"
    if role != "admin" and target not in MEMBER_OF[role] and "{id}" in path:
        return "404"
    if role != "admin" and target not in MEMBER_OF[role] and method != "get":
        return "404"  # a write naming the other project's object in its body
    return "allowed"


def _matches(expected: str, response) -> bool:
    got = response.status_code
    if expected == "allowed":
        return got < 500 and got not in (401, 403, 404)
    return str(got) == expected


LIST_KIND = {prefix: key for prefix, key in _PREFIX_OBJECT}


def test_every_role_and_project_cell_of_the_matrix_matches(two_projects):
    roles = ["anonymous", "reviewer-P1", "reviewer-P2", "curator-P1", "admin"]
    operations = sorted(_operations())
    unknown = [op for op in operations if op not in ROLE_TABLE]
    assert unknown == [], "operations without a required role"
    failures, cells = [], 0
    for method, path in operations:
        for target in ("P1", "P2"):
            objects = two_projects[target]
            for role in roles:
                cache.clear()  # throttles: each cell is judged on its own
                client = APIClient()
                if role != "anonymous":
                    client.force_authenticate(two_projects["users"][role])
                with transaction.atomic():
                    response = getattr(client, method)(
                        _path(path, objects), _body(method, path, objects), format="json"
                    )
                    transaction.set_rollback(True)
                cells += 1
                expected = _expected(method, path, role, target)
                if not _matches(expected, response):
                    failures.append(
                        f"{method.upper()} {path} [{target}] as {role}: "
                        f"{response.status_code}, expected {expected}"
                    )
                # Lists never show the other project's objects to a non-member.
                kind = LIST_KIND.get(path)
                if kind and response.status_code == 200 and role in MEMBER_OF:
                    hidden = "P2" if "P1" in MEMBER_OF[role] else "P1"
                    ids = {item["id"] for item in response.json()["results"]}
                    if two_projects[hidden][kind].pk in ids:
                        failures.append(f"GET {path} as {role} lists {hidden}'s {kind}")
    print(f"authorization matrix: {len(operations)} operations, {cells} cells")
    assert failures == []


# --- ORM-leak probes ------------------------------------------------------------------------
LEAK_PROBES = [
    "/api/runs/?ordering=created_by__password",
    "/api/rules/?ordering=created_by__password",
    "/api/labels/?ordering=author__password",
    "/api/labels/?author__password__startswith=pbkdf2",
    "/api/interactions/?label__author__password__startswith=pbkdf2",
    "/api/interactions/?search=label__author__password",
    "/api/interactions/?search=__",
    "/api/interactions/?drug=__startswith",
    "/api/predictions/?interaction__label__author__password__startswith=pbkdf2",
    "/api/runs/?created_by__password__regex=^pbkdf2",
    "/api/interactions/?fields=label__author__password",
    "/api/labels/?values=author__password",
]


def test_orm_lookups_in_queries_are_ignored_or_refused_and_leak_nothing(two_projects):
    client = APIClient()
    client.force_authenticate(two_projects["users"]["admin"])
    for url in LEAK_PROBES:
        baseline = client.get(url.split("?")[0])

        response = client.get(url)

        assert response.status_code in (200, 400), (url, response.content[:300])
        body = response.content.decode()
        assert not any(marker in body for marker in SECRET_MARKERS), url
        if response.status_code == 200 and "search=" not in url and "drug=" not in url:
            # An ignored key changes nothing: same rows, same order.
            assert response.json()["results"] == baseline.json()["results"], url


JSON_LOOKUP_PROBES = [
    ("post", "/api/labels/", {"interaction__project__members__password__startswith": "p"}),
    ("post", "/api/rules/", {"created_by__password": "pbkdf2", "project__is_restricted": 0}),
    ("post", "/api/rules/preview/", {"project__members__password__startswith": "pbkdf2"}),
    ("post", "/api/runs/", {"params": {"created_by__password__startswith": "pbkdf2"}}),
    ("patch", "/api/labels/{id}/", {"author__password": "x", "interaction__project": 2}),
]


def test_json_bodies_with_lookup_keys_are_refused_or_ignored(two_projects):
    objects = two_projects["P1"]
    client = APIClient()
    client.force_authenticate(two_projects["users"]["admin"])
    for method, path, extra in JSON_LOOKUP_PROBES:
        body = {**_body(method, path, objects), **extra}

        with transaction.atomic():
            response = getattr(client, method)(_path(path, objects), body, format="json")
            transaction.set_rollback(True)

        assert response.status_code in (200, 201, 400), (path, response.content[:300])
        assert not any(marker in response.content.decode() for marker in SECRET_MARKERS), path


def _median_time(client, url: str, n: int) -> tuple[float, bytes]:
    times, body = [], b""
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - started)
        body = response.content
    return statistics.median(times), body


def test_a_right_password_hash_guess_answers_like_a_wrong_one(two_projects):
    """No oracle: the filter is ignored, so a correct prefix of the author's password hash gets
    the same body in about the same time as a wrong one (loose bound: shared CI machines)."""
    author = two_projects["users"]["reviewer-P1"]
    Label.objects.filter(pk=two_projects["P1"]["label"].pk).update(author=author)
    right = author.password[:12]  # e.g. "pbkdf2_sha25"
    client = APIClient()
    client.force_authenticate(two_projects["users"]["admin"])
    urls = {
        "right": f"/api/labels/?author__password__startswith={right}",
        "wrong": "/api/labels/?author__password__startswith=zzzzzzzzzzzz",
    }
    _median_time(client, urls["right"], 3)  # warm up
    (t_right, b_right), (t_wrong, b_wrong) = (_median_time(client, u, 15) for u in urls.values())

    assert b_right == b_wrong
    assert abs(t_right - t_wrong) < max(0.05, 0.5 * min(t_right, t_wrong))


# --- CSRF ---------------------------------------------------------------------------------------
def test_session_writes_without_a_csrf_token_are_refused(two_projects):
    objects = two_projects["P1"]
    admin = two_projects["users"]["admin"]
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin)
    writes = [
        ("post", "/api/labels/", _body("post", "/api/labels/", objects)),
        (
            "patch",
            f"/api/labels/{objects['label'].pk}/",
            _body("patch", "/api/labels/{id}/", objects),
        ),
        ("put", f"/api/labels/{objects['label'].pk}/", _body("put", "/api/labels/{id}/", objects)),
        ("post", "/api/rules/", _body("post", "/api/rules/", objects)),
        ("patch", f"/api/rules/{objects['rule'].pk}/", {"name": "x"}),
        ("delete", f"/api/rules/{objects['rule'].pk}/", {}),
        ("post", "/api/runs/", _body("post", "/api/runs/", objects)),
        ("post", f"/api/runs/{objects['run'].pk}/cancel/", {}),
    ]
    for method, url, body in writes:
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 403, f"{method} {url}: {response.status_code}"
        assert "CSRF" in response.json()["detail"]
    # Web forms too (the review action and starting a run).
    web = Client(enforce_csrf_checks=True)
    web.force_login(admin)
    for url in (
        f"/interactions/{objects['interaction'].pk}/label/",
        f"/projects/{objects['project'].pk}/runs/start/",
        f"/projects/{objects['project'].pk}/rules/new/",
        "/accounts/logout/",
    ):
        assert web.post(url, {"label_class": "Synergistic"}).status_code == 403, url
    assert Rule.objects.filter(pk=objects["rule"].pk).exists()
    assert Run.objects.get(pk=objects["run"].pk).state == Run.State.QUEUED


def test_a_login_post_without_a_csrf_token_is_refused(two_projects):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/accounts/login/", {"username": "rev1", "password": "correct horse battery staple"}
    )

    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_no_api_token_appears_in_any_html_page(two_projects):
    tokens = {name: issue_token(user) for name, user in two_projects["users"].items()}
    urls = [*app_page_urls(two_projects["P1"]), "/api/docs/", "/accounts/login/"]
    pages = 0
    for name, user in two_projects["users"].items():
        client = Client()
        client.force_login(user)
        for url in urls:
            response = client.get(url)
            if not response.get("Content-Type", "").startswith("text/html"):
                continue
            html = response.content.decode()
            pages += 1
            for key in tokens.values():
                assert key not in html, f"token in {url} as {name}"
    assert pages > 10
    print(f"token scan: {pages} HTML pages")
