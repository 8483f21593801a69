"""Curator web pages for rules and export: preview before save, clear errors, downloads."""

from __future__ import annotations

import pytest

from annotations.models import Label, Rule
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory

pytestmark = pytest.mark.django_db

RULE = {
    "name": "dec",
    "kind": "regex",
    "field": "blinded",
    "pattern": "anticoagulant",
    "label_class": "Antagonistic",
    "priority": "1",
    "is_active": "on",
}


def test_preview_shows_counts_and_saves_nothing_then_save_creates_the_rule(
    client, project, curator_carl
):
    version = ModelVersionFactory(project=project, is_active=True)
    PredictionFactory(
        interaction=InteractionFactory(project=project),
        model_version=version,
        predicted_class="Synergistic",
    )
    client.force_login(curator_carl)
    url = f"/projects/{project.pk}/rules/new/"

    preview = client.post(url, {**RULE, "action": "preview"})
    assert preview.status_code == 200
    body = preview.content.decode()
    assert "labels <strong>1</strong> of them differently" in body
    assert "matches; the active model" in body  # no stray space before the semicolon
    assert "One example per distinct sentence pattern (1 shown):" in body
    assert not Rule.objects.exists()

    saved = client.post(url, {**RULE, "action": "save"})
    assert saved.status_code == 302
    rule = Rule.objects.get()
    listing = client.get(f"/projects/{project.pk}/rules/").content.decode()
    assert "anticoagulant" in listing

    edited = client.post(f"/rules/{rule.pk}/edit/", {**RULE, "pattern": "(a+)+", "action": "save"})
    assert edited.status_code == 422 and "Nested quantifiers" in edited.content.decode()
    assert Rule.objects.get().pattern == "anticoagulant"


def test_rule_and_export_pages_need_the_curator_role(client, project, reviewer_rita):
    client.force_login(reviewer_rita)
    for url in (
        f"/projects/{project.pk}/rules/",
        f"/projects/{project.pk}/export/",
        f"/projects/{project.pk}/export/download/",
    ):
        assert client.get(url).status_code == 403, url


def test_the_export_page_downloads_a_streamed_file_and_a_card(client, project, curator_carl):
    interaction = InteractionFactory(project=project)
    Label.objects.create(interaction=interaction, label_class="Synergistic", source="seed")
    client.force_login(curator_carl)

    page = client.get(f"/projects/{project.pk}/export/")
    download = client.get(f"/projects/{project.pk}/export/download/?file_format=jsonl&sources=seed")
    card = client.get(f"/projects/{project.pk}/export/card/?file_format=csv")
    bad = client.get(f"/projects/{project.pk}/export/download/?file_format=xlsx")

    assert page.status_code == 200 and "Download" in page.content.decode()
    assert download["Content-Disposition"].startswith("attachment;")
    assert b'"final_label": "Synergistic"' in b"".join(download.streaming_content)
    assert card.content.decode().startswith("# Dataset card: DrugBank DDI")
    assert bad.status_code == 422
