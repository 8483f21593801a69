"""Every web action x every persona: anonymous -> login redirect, too low a role -> 403,
enough role -> the action runs. The route list is checked against annotations.urls so a new
page cannot ship without a row here."""

from __future__ import annotations

import pytest
from django.urls import get_resolver, reverse

from annotations.models import Adjudication, Run
from annotations.roles import ROLE_RANK, Role
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory

# name -> (method, minimum role, url args builder, POST data)
ACTIONS = {
    "home": ("get", Role.REVIEWER, lambda o: [], None),
    "queue": ("get", Role.REVIEWER, lambda o: [o["project"].pk], None),
    "review_next": ("get", Role.REVIEWER, lambda o: [o["project"].pk], None),
    "review_item": ("get", Role.REVIEWER, lambda o: [o["interaction"].pk], None),
    "review_action": ("post", Role.REVIEWER, lambda o: [o["interaction"].pk], {"action": "accept"}),
    "review_skip": ("post", Role.REVIEWER, lambda o: [o["interaction"].pk], {}),
    "review_undo": ("post", Role.REVIEWER, lambda o: [o["project"].pk], {}),
    "dashboard": ("get", Role.REVIEWER, lambda o: [o["project"].pk], None),
    "dashboard_runs": ("get", Role.REVIEWER, lambda o: [o["project"].pk], None),
    "runs": ("get", Role.ADMIN, lambda o: [o["project"].pk], None),
    "run_start": (
        "post",
        Role.ADMIN,
        lambda o: [o["project"].pk],
        {"kind": "train", "epochs": 1, "learning_rate": 0.001, "lora_r": 4},
    ),
    "run_detail": ("get", Role.ADMIN, lambda o: [o["run"].pk], None),
    "run_progress": ("get", Role.ADMIN, lambda o: [o["run"].pk], None),
    "run_cancel": ("post", Role.ADMIN, lambda o: [o["run"].pk], {}),
    "schedule": ("get", Role.ADMIN, lambda o: [o["project"].pk], None),
    "audit": ("get", Role.CURATOR, lambda o: [o["project"].pk], None),
    "account_tokens": ("get", Role.REVIEWER, lambda o: [], None),
    "account_token_revoke": ("post", Role.REVIEWER, lambda o: [], {"token_key": "0123456789abcde"}),
    # Team review (issue 15): curators.
    "team": ("get", Role.CURATOR, lambda o: [o["project"].pk], None),
    "adjudications": ("get", Role.CURATOR, lambda o: [o["project"].pk], None),
    "adjudication": ("get", Role.CURATOR, lambda o: [o["adjudication"].pk], None),
    "flags": ("get", Role.CURATOR, lambda o: [o["project"].pk], None),
    "flag_label": (
        "post",
        Role.CURATOR,
        lambda o: [o["interaction"].pk],
        {"label_class": "Synergistic"},
    ),
    "flag_return": (
        "post",
        Role.CURATOR,
        lambda o: [o["interaction"].pk],
        {"comment": "see the guideline", "version": 1},
    ),
    "guideline_amend": ("post", Role.CURATOR, lambda o: [o["project"].pk], {"guideline": "G2"}),
    "consistency": ("get", Role.CURATOR, lambda o: [o["project"].pk], None),
}
# Routes of other engineers' pages (rules, exports, imports) are covered by their own tests.
OTHER_OWNERS_PREFIXES = ("rule", "export", "import")
PERSONAS = ("anonymous", "outsider", "reviewer_rita", "curator_carl", "admin_ada")
PERSONA_ROLE = {
    "anonymous": None,
    "outsider": None,
    "reviewer_rita": Role.REVIEWER,
    "curator_carl": Role.CURATOR,
    "admin_ada": Role.ADMIN,
}


def test_every_web_route_is_in_the_matrix_and_declares_a_role():
    resolver = get_resolver()
    names = {
        pattern.name
        for pattern in resolver.url_patterns
        if getattr(pattern, "namespace", None) == "annotations"
        for pattern in pattern.url_patterns
    }
    mine = {name for name in names if not name.startswith(OTHER_OWNERS_PREFIXES)}
    assert mine == set(ACTIONS)
    for pattern in get_resolver("annotations.urls").url_patterns:
        assert hasattr(pattern.callback, "required_role"), pattern.name


@pytest.fixture
def objects(project):
    version = ModelVersionFactory(project=project, is_active=True)
    interaction = InteractionFactory(project=project)
    PredictionFactory(interaction=interaction, model_version=version)
    run = Run.objects.create(project=project, kind=Run.Kind.TRAIN)
    adjudication = Adjudication.objects.create(interaction=interaction)
    return {
        "project": project,
        "interaction": interaction,
        "run": run,
        "adjudication": adjudication,
    }


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_permission_matrix(client, request, objects, persona, action):
    method, needed, args, data = ACTIONS[action]
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    url = reverse(f"annotations:{action}", args=args(objects))
    response = client.get(url) if method == "get" else client.post(url, data)
    held = PERSONA_ROLE[persona]
    if persona == "anonymous":
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))
    elif held is None or ROLE_RANK[held] < ROLE_RANK[needed]:
        assert response.status_code == 403
        assert "Not allowed" in response.content.decode()
    else:
        assert response.status_code in (200, 302), response.content[:500]
        if response.status_code == 302:
            assert not response.url.startswith(reverse("login"))


def test_login_page_renders_and_logs_a_reviewer_in(client, reviewer_rita):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()
    response = client.post(
        reverse("login"), {"username": "rita", "password": "correct horse battery staple"}
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 302  # home -> the first visible project's queue


def test_the_only_top_level_routes_are_admin_api_login_logout_and_the_app():
    """Issue 18: no password reset/change pages are routed by accident (no e-mail is set up)."""
    top = {str(pattern.pattern) for pattern in get_resolver().url_patterns}
    assert top == {"admin/", "api/", "accounts/login/", "accounts/logout/", ""}
