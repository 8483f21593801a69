"""Issue 13: a web import records the file's labels as `import`, distinct from `seed`, unless
the curator chooses seed; the export's label_source column says which."""

from __future__ import annotations

import csv
import io

from django.urls import reverse
from rest_framework.test import APIClient

from annotations.models import Label


def _write(path, drug="Aspirin"):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Drug 1", "Drug 2", "Interaction Description", "label"])
        writer.writerow(
            [drug, "Warfarin", f"{drug} may increase the effect of Warfarin.", "Synergistic"]
        )
    return path


def _upload(client, project, path, **extra):
    with path.open("rb") as handle:
        return client.post(
            reverse("annotations:imports", args=[project.pk]),
            {"file": handle, "label_column": "label", **extra},
        )


def _exported_label_sources(client, project) -> dict[str, str]:
    response = client.get(
        reverse("annotations:export_download", args=[project.pk]), {"file_format": "csv"}
    )
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    return {row["drug_a"]: row["label_source"] for row in csv.DictReader(io.StringIO(body))}


def test_a_web_import_records_its_labels_as_import_and_the_export_says_so(
    client, project, curator_carl, tmp_path
):
    client.force_login(curator_carl)
    assert _upload(client, project, _write(tmp_path / "a.csv")).status_code == 200
    assert Label.objects.get(interaction__drug_a="Aspirin").source == Label.Source.IMPORT
    assert _exported_label_sources(client, project) == {"Aspirin": "import"}


def test_the_curator_can_choose_seed_instead(client, project, curator_carl, tmp_path):
    client.force_login(curator_carl)
    _upload(client, project, _write(tmp_path / "b.csv", "Caffeine"), label_source="seed")
    assert Label.objects.get(interaction__drug_a="Caffeine").source == Label.Source.SEED
    assert _exported_label_sources(client, project) == {"Caffeine": "seed"}


def test_an_unknown_label_source_is_a_form_error_not_a_500(client, project, curator_carl, tmp_path):
    client.force_login(curator_carl)
    response = _upload(client, project, _write(tmp_path / "c.csv"), label_source="review")
    assert response.status_code == 422
    assert "Select a valid choice" in response.content.decode()
    assert not Label.objects.exists()


def test_the_api_upload_records_import_too_and_takes_seed_when_asked(
    project, curator_carl, tmp_path
):
    api = APIClient()
    api.force_authenticate(curator_carl)
    url = f"/api/projects/{project.pk}/imports/"
    with _write(tmp_path / "d.csv", "Digoxin").open("rb") as handle:
        assert api.post(url, {"file": handle, "label_column": "label"}).status_code == 201
    with _write(tmp_path / "e.csv", "Ethanol").open("rb") as handle:
        payload = {"file": handle, "label_column": "label", "label_source": "seed"}
        assert api.post(url, payload).status_code == 201
    sources = dict(Label.objects.values_list("interaction__drug_a", "source"))
    assert sources == {"Digoxin": "import", "Ethanol": "seed"}
