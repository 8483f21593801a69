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
    assert "1 interaction matches this rule." in " ".join(
        body.replace("<strong>", "").replace("</strong>", "").split()
    )
    assert " ;" not in body  # issue 13: "match ;"
    assert "Matches 1 to 1 of 1, by sentence pattern:" in body
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


def _page_rows(body: str) -> list[tuple[str, str]]:
    """(interaction id, model class) of each row of the preview's match table."""
    import re

    table = body.split('id="rule-preview-matches"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<a href="/interactions/(\d+)/">.*?</code></td>\s*<td>([^<]+)', table, re.S)
    return [(pk, cls.strip()) for pk, cls in rows]


def test_the_preview_lists_every_match_with_its_model_class_paged(client, project, curator_carl):
    version = ModelVersionFactory(project=project, is_active=True)
    made = []
    for i in range(23):
        interaction = InteractionFactory(
            project=project, blinded_text=f"DRUG_A anticoagulant {i % 3} DRUG_B."
        )
        PredictionFactory(
            interaction=interaction,
            model_version=version,
            predicted_class="Synergistic" if i % 2 else "Antagonistic",
        )
        made.append(interaction)
    truth = {str(i.pk): ("Synergistic" if n % 2 else "Antagonistic") for n, i in enumerate(made)}
    client.force_login(curator_carl)
    url = f"/projects/{project.pk}/rules/new/"
    seen = {}
    for page in ("1", "2", "3"):
        body = client.post(url, {**RULE, "action": "preview", "page": page}).content.decode()
        rows = _page_rows(body)
        assert len(rows) == (10 if page != "3" else 3)
        seen.update(rows)
        assert f"Page {page} of 3" in body
    assert seen == truth  # every match once, each with the active version's class
    assert "Next matches" not in body and "Previous matches" in body
    odd = client.post(url, {**RULE, "action": "preview", "page": "x' OR 1=1"})
    assert odd.status_code == 200 and "Page 1 of 3" in odd.content.decode()


def test_a_regex_error_on_the_page_has_no_stray_marker(client, project, curator_carl):
    client.force_login(curator_carl)
    for pattern in ("increase(s", "(", "a**"):
        response = client.post(
            f"/projects/{project.pk}/rules/new/", {**RULE, "pattern": pattern, "action": "preview"}
        )
        body = response.content.decode()
        assert response.status_code == 422 and "Invalid regular expression" in body
        assert "\u25b6" not in body and "&#9654;" not in body
