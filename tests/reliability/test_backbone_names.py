"""Issue 18, point 7: the backbone run parameter names one of settings.DDI_BACKBONES; anything
else is refused with a neutral "unknown backbone", and a backbone load error (which names
server folders) reads "unknown backbone" to non-admins."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotations.exceptions import InvalidRunParams
from annotations.models import Run
from annotations.services.jobs import params as run_params

pytestmark = pytest.mark.django_db


def _api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize("backbone", ["/root/.ssh", "~/.ssh", "/nonexistent/xyz", "bert-base"])
def test_a_backbone_outside_the_configured_list_is_refused_neutrally(admin_ada, project, backbone):
    response = _api(admin_ada).post(
        "/api/runs/",
        {"project": project.pk, "kind": "train", "params": {"backbone": backbone}},
        format="json",
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "unknown backbone" in body
    for leak in ("does not exist", "config.json", "local folder", backbone):
        assert leak not in body
    assert not Run.objects.exists()


def test_configured_backbones_are_accepted(settings):
    settings.DDI_BACKBONES = ["tiny-random-bert", "/srv/models/biobert"]
    for name in ("tiny-random-bert", "/srv/models/biobert", settings.DDI_BACKBONE):
        assert run_params.validate_params({"backbone": name}) == {"backbone": name}
    with pytest.raises(InvalidRunParams, match="unknown backbone"):
        run_params.validate_params({"backbone": "/srv/models"})


def test_a_backbone_load_error_reads_unknown_backbone_to_non_admins(
    project, reviewer_rita, admin_ada
):
    detail = (
        "backbone '/srv/x' cannot be loaded offline. Tried: local folder /srv/x (no config.json)"
    )
    run = Run.objects.create(
        project=project, kind=Run.Kind.TRAIN, state=Run.State.FAILED, error=detail
    )
    seen = _api(reviewer_rita).get(f"/api/runs/{run.pk}/").json()
    assert seen["error"] == "unknown backbone"
    listed = _api(reviewer_rita).get("/api/runs/").json()
    assert "config.json" not in str(listed)
    assert _api(admin_ada).get(f"/api/runs/{run.pk}/").json()["error"] == detail
