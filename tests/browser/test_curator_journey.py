"""The curator's journey in Chromium: import a file, preview and save a rule, export CSV, JSONL
and Parquet; the test opens each file and checks the provenance columns."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest

from annotations.models import ImportJob, Rule

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PROVENANCE = {"label_source", "note", "source_file", "source_line", "import_id", "source"}


@pytest.fixture
def curator_carl(project):
    from annotations.roles import Role
    from tests.factories import UserFactory

    return UserFactory(username="carl", role=Role.CURATOR)


def _download(page, fmt: str, tmp_path):
    page.locator("select[name=file_format]").select_option(fmt)
    with page.expect_download() as info:
        page.get_by_role("button", name="Download").click()
    target = tmp_path / f"export.{fmt}"
    info.value.save_as(target)
    return target


def test_curator_imports_writes_a_rule_and_exports_three_formats_with_provenance(
    login, live_server, project, curator_carl, tmp_path
):
    upload = tmp_path / "curated.csv"
    with upload.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Drug 1", "Drug 2", "Interaction Description", "label"])
        aspirin = "Aspirin may increase the anticoagulant activities of Warfarin."
        writer.writerow(["Aspirin", "Warfarin", aspirin, "Synergistic"])
        caffeine = "Caffeine may decrease the sedative activities of Zolpidem."
        writer.writerow(["Caffeine", "Zolpidem", caffeine, ""])
    page = login(curator_carl)
    page.get_by_role("link", name="Import").click()
    page.set_input_files("input[name=file]", str(upload))
    page.fill("input[name=label_column]", "label")
    page.get_by_role("button", name="Import").click()
    summary = " ".join(page.locator("#import-summary").inner_text().split())
    assert "2 rows read, 2 new interactions, 0 already present, 1 new label." in summary
    job = ImportJob.objects.get(file_name="curated.csv")

    page.get_by_role("link", name="Rules").click()
    page.goto(f"{live_server.url}/projects/{project.pk}/rules/new/")
    page.get_by_label("Name").fill("decrease means less drug")
    page.get_by_label("Pattern").fill(r"\bdecrease\b")
    page.get_by_label("Label class").select_option("Antagonistic")
    page.get_by_role("button", name="Preview").click()
    assert "1 interaction match" in page.locator("#rule-preview").inner_text()
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"**/projects/{project.pk}/rules/")
    assert Rule.objects.filter(name="decrease means less drug").exists()

    page.get_by_role("link", name="Export").click()
    with _download(page, "csv", tmp_path).open(newline="", encoding="utf-8") as handle:
        rows = {r["drug_a"]: r for r in csv.DictReader(handle)}
    assert set(rows["Aspirin"]) >= PROVENANCE
    # The import page records a file's labels as "import" (not "seed", unless the curator
    # chooses it); both rank as seed labels in the final-label order.
    assert (rows["Aspirin"]["label_source"], rows["Aspirin"]["source"]) == ("import", "seed")
    assert (rows["Caffeine"]["final_label"], rows["Caffeine"]["source"]) == ("Antagonistic", "rule")
    assert rows["Aspirin"]["source_file"] == "curated.csv"
    assert rows["Aspirin"]["source_line"] == "2" and rows["Aspirin"]["import_id"] == str(job.pk)

    lines = _download(page, "jsonl", tmp_path).read_text(encoding="utf-8").splitlines()
    records = {r["drug_a"]: r for r in map(json.loads, lines)}
    assert records["Caffeine"]["source_line"] == 3 and records["Caffeine"]["import_id"] == job.pk

    table = pq.read_table(_download(page, "parquet", tmp_path)).to_pylist()
    by_drug = {r["drug_a"]: r for r in table}
    assert set(by_drug["Aspirin"]) >= PROVENANCE
    assert by_drug["Aspirin"]["source_file"] == "curated.csv"
