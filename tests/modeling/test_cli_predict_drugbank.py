"""`python -m modeling predict` on the full DrugBank layout: ids stand in for missing names, and
a row it cannot use is reported and skipped while the rest is predicted."""

from __future__ import annotations

import csv

import pytest

from modeling.cli import main
from modeling.tables import InputFileError, SkippedRow, blinded_text, iter_rows

HEADER = ["Drug 1", "Drug 2", "Interaction Description", "drug1_id", "drug2_id"]
ROWS = [
    ["Nevirapine", "Glipizide", "The metabolism of Glipizide can be increased when combined "
     "with Nevirapine.", "DB00238", "DB01067"],
    # As on line 1068 of the full DrugBank file: no name, the sentence uses the id.
    ["Rifabutin", "", "The metabolism of DB09396 can be increased when combined with Rifabutin.",
     "DB00615", "DB09396"],
    ["Aspirin", "", "Aspirin may increase the anticoagulant activities of something.", "", ""],
    ["Diazepam", "Alcohol", "Diazepam may increase the sedative activities of Alcohol.", "", ""],
]  # fmt: skip


@pytest.fixture
def drugbank_csv(tmp_path):
    path = tmp_path / "drugbank_ddi_full.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(ROWS)
    return path


def test_an_empty_name_falls_back_to_the_drugbank_id_like_the_importer(drugbank_csv):
    skipped: list[SkippedRow] = []
    rows = list(iter_rows(drugbank_csv, skipped=skipped))
    assert [row["Drug 1"] for row in rows] == ["Nevirapine", "Rifabutin", "Diazepam"]
    assert blinded_text(rows[1]) == (
        "The metabolism of DRUG_B can be increased when combined with DRUG_A."
    )
    assert skipped == [SkippedRow(4, "line 4: column 'Drug 2' is empty (and so is 'drug2_id')")]
    with pytest.raises(InputFileError, match="line 4: column 'Drug 2' is empty"):
        list(iter_rows(drugbank_csv))  # strict readers (training labels) still refuse


def test_predict_writes_every_usable_row_and_reports_the_rest(
    drugbank_csv, tiny_model, tmp_path, capsys
):
    result, _ = tiny_model
    output = tmp_path / "predicted.csv"
    command = ["predict", "--model", str(result.artifact_dir), "--input", str(drugbank_csv)]
    assert main([*command, "--output", str(output)]) == 0

    with output.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["Drug 1"] for row in rows] == ["Nevirapine", "Rifabutin", "Diazepam"]
    assert all(row["predicted_label"] in {"Synergistic", "Antagonistic"} for row in rows)
    err = capsys.readouterr().err
    assert "skipped line 4: column 'Drug 2' is empty" in err
    assert "1 row(s) skipped, the rest predicted" in err
    report = tmp_path / "predicted.skipped.csv"
    with report.open(newline="") as handle:
        assert list(csv.DictReader(handle)) == [
            {"line": "4", "problem": "line 4: column 'Drug 2' is empty (and so is 'drug2_id')"}
        ]
