"""``python -m modeling`` end to end on a tiny CSV with the tiny backbone."""

from __future__ import annotations

import csv
import json

import pytest

from modeling.cli import main

ROWS = [
    (
        "Aspirin",
        "Warfarin",
        "Aspirin may increase the anticoagulant activities of Warfarin.",
        "Synergistic",
    ),
    (
        "Ibuprofen",
        "Furosemide",
        "Ibuprofen may decrease the diuretic activities of Furosemide.",
        "Antagonistic",
    ),
    (
        "Caffeine",
        "Zolpidem",
        "Caffeine may decrease the sedative activities of Zolpidem.",
        "Antagonistic",
    ),
    (
        "Diazepam",
        "Alcohol",
        "Diazepam may increase the sedative activities of Alcohol.",
        "Synergistic",
    ),
] * 3


def _write_csv(path, header, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def test_train_predict_evaluate(tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    _write_csv(labels, ["Drug 1", "Drug 2", "Interaction Description", "label"], ROWS)
    model_dir = tmp_path / "model"
    assert (
        main(
            [
                "train",
                "--labels",
                str(labels),
                "--out",
                str(model_dir),
                "--backbone",
                "tiny-random-bert",
                "--epochs",
                "2",
                "--lora-r",
                "4",
                "--target-modules",
                "query,value",
            ]
        )
        == 0
    )
    trained = json.loads(capsys.readouterr().out)
    assert trained["n_train"] == len(ROWS)
    saved = json.loads((model_dir / "model.json").read_text())
    assert saved["train_config"]["lora_r"] == 4
    assert saved["train_config"]["target_modules"] == ["query", "value"]

    output = tmp_path / "out.csv"
    assert (
        main(
            ["predict", "--model", str(model_dir), "--input", str(labels), "--output", str(output)]
        )
        == 0
    )
    with output.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(ROWS)
    assert list(rows[0])[:4] == ["Drug 1", "Drug 2", "Interaction Description", "label"]
    assert {"predicted_label", "confidence", "uncertainty", "why_unsure"} <= set(rows[0])
    assert {"p_Antagonistic", "p_Synergistic"} <= set(rows[0])
    for row in rows:
        assert float(row["uncertainty"]) == pytest.approx(1.0 - float(row["confidence"]), abs=2e-6)
    assert rows[0]["Drug 1"] == "Aspirin"
    total = float(rows[0]["p_Antagonistic"]) + float(rows[0]["p_Synergistic"])
    assert abs(total - 1.0) < 1e-4

    assert main(["evaluate", "--model", str(model_dir), "--labels", str(labels)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == len(ROWS) and "macro_f1" in metrics and "ece" in metrics


def test_missing_column_is_a_readable_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    _write_csv(bad, ["Drug 1", "Interaction Description", "label"], [("a", "b", "c")])
    assert (
        main(
            [
                "train",
                "--labels",
                str(bad),
                "--out",
                str(tmp_path / "m"),
                "--backbone",
                "tiny-random-bert",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "bad.csv" in err and "'Drug 2'" in err and "Traceback" not in err


def test_unknown_backbone_and_missing_model_exit_2(tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    _write_csv(labels, ["Drug 1", "Drug 2", "Interaction Description", "label"], ROWS)
    assert (
        main(
            [
                "train",
                "--labels",
                str(labels),
                "--out",
                str(tmp_path / "m"),
                "--backbone",
                "no-such/model",
            ]
        )
        == 2
    )
    assert "cannot be loaded offline" in capsys.readouterr().err
    assert (
        main(
            [
                "predict",
                "--model",
                str(tmp_path / "nothing"),
                "--input",
                str(labels),
                "--output",
                str(tmp_path / "o.csv"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "o.csv").exists()
