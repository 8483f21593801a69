"""The import page's summary: counts in words, with how many rows were already present."""

from __future__ import annotations

from django.urls import reverse

from tests.reliability.input_files import write_interactions_csv


def _upload(client, project, path):
    with path.open("rb") as handle:
        return client.post(
            reverse("annotations:imports", args=[project.pk]), {"file": handle, "label_column": ""}
        )


def test_a_second_file_with_known_rows_says_how_many_were_already_present(
    client, project, curator_carl, tmp_path
):
    client.force_login(curator_carl)
    _upload(client, project, write_interactions_csv(tmp_path / "first.csv", 15))
    page = _upload(client, project, write_interactions_csv(tmp_path / "second.csv", 20))
    body = " ".join(page.content.decode().split())
    assert "20 rows read, 5 new interactions, 15 already present, 0 new labels." in body


def test_one_new_interaction_is_singular(client, project, curator_carl, tmp_path):
    client.force_login(curator_carl)
    page = _upload(client, project, write_interactions_csv(tmp_path / "one.csv", 1))
    body = " ".join(page.content.decode().split())
    assert "1 row read, 1 new interaction, 0 already present, 0 new labels." in body
