"""Exports: CSV injection safety, exact JSONL/Parquet round-trips, same data -> same bytes,
the dataset card, the management command, and export -> re-import gives the same labels."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command

from annotations.exceptions import InvalidExportFilter
from annotations.models import Interaction, Label, Project, Rule
from annotations.selectors.final_labels import FinalLabelFilters, iter_final_labels
from annotations.services.export import (
    build_export_card,
    columns_for,
    make_filters,
    stream_export,
)
from annotations.services.export.card import card_markdown
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def labeled_project(project, reviewer_rita):
    """Four rows, one per source, with probabilities from an active model version."""
    version = ModelVersionFactory(
        project=project, number=3, is_active=True, metrics={"macro_f1": 0.91}
    )
    rows = [
        InteractionFactory(project=project, drug_a="Warfarin", drug_b="Aspirin"),
        InteractionFactory(project=project, drug_a="Abacavir", drug_b='Zidovudine, "AZT"'),
        InteractionFactory(
            project=project,
            drug_a="Rifampin",
            drug_b="Midazolam",
            description="Rifampin can decrease the serum concentration of Midazolam.\nSecond line.",
            blinded_text="DRUG_A can decrease the serum concentration of DRUG_B.\nSecond line.",
            pattern_hash="decrease",
        ),
        InteractionFactory(project=project, drug_a="Ketoconazole ü", drug_b="Simvastatin"),
    ]
    for interaction, p in zip(rows, (0.9, 0.123456789012345, 0.3, 0.6), strict=True):
        PredictionFactory(
            interaction=interaction,
            model_version=version,
            predicted_class="Synergistic" if p >= 0.5 else "Antagonistic",
            confidence=max(p, 1 - p),
            margin=abs(2 * p - 1),
            probabilities=[p, 1 - p],
        )
    Label.objects.create(
        interaction=rows[0], label_class="Antagonistic", source="review", author=reviewer_rita
    )
    Label.objects.create(interaction=rows[1], label_class="Synergistic", source="seed")
    Rule.objects.create(
        project=project, name="decrease", pattern=r"\bdecrease\b", label_class="Antagonistic"
    )
    return project


def _export(project, fmt, filters=None, **kwargs) -> bytes:
    return b"".join(
        stream_export(
            project=project, export_format=fmt, filters=filters or FinalLabelFilters(), **kwargs
        )
    )


def _csv_rows(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def test_csv_cells_that_start_like_a_formula_are_neutralised(project):
    payloads = [
        '=HYPERLINK("http://evil")',
        "+1+2",
        "-2+3",
        "@SUM(A1)",
        "\tcmd",
        "\rcmd",
        "|calc",
        "%x",
    ]
    for n, payload in enumerate(payloads):
        interaction = InteractionFactory(
            project=project, drug_a=payload, drug_b=f"B{n}", description=payload
        )
        Label.objects.create(interaction=interaction, label_class="Synergistic", source="seed")

    rows = _csv_rows(_export(project, "csv"))

    assert [r["drug_a"] for r in rows] == ["'" + p for p in payloads]
    assert [r["description"] for r in rows] == ["'" + p for p in payloads]
    assert all(not r["drug_a"].startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows)


def test_csv_has_every_provenance_column_and_one_probability_column_per_class(labeled_project):
    data = _export(labeled_project, "csv")
    rows = _csv_rows(data)

    assert list(rows[0]) == columns_for(["Synergistic", "Antagonistic"])
    assert [(r["source"], r["final_label"]) for r in rows] == [
        ("review", "Antagonistic"),
        ("seed", "Synergistic"),
        ("rule", "Antagonistic"),
        ("model", "Synergistic"),
    ]
    assert rows[0]["reviewer"] == "rita" and rows[0]["reviewed_at"].endswith("+00:00")
    assert rows[2]["rule_id"] == str(Rule.objects.get().id)
    assert rows[3]["model_version"] == "3"
    assert float(rows[1]["p_Synergistic"]) == 0.123456789012345  # repr keeps every digit
    assert rows[1]["drug_b"] == 'Zidovudine, "AZT"'
    assert rows[2]["description"].endswith("\nSecond line.")


def test_jsonl_round_trips_exactly_to_the_database_values(labeled_project):
    expected = list(iter_final_labels(project=labeled_project))

    records = [json.loads(line) for line in _export(labeled_project, "jsonl").decode().splitlines()]

    assert len(records) == len(expected)
    for record, row in zip(records, expected, strict=True):
        assert record["interaction_id"] == row.interaction_id
        assert (record["drug_a"], record["drug_b"], record["description"]) == (
            row.drug_a,
            row.drug_b,
            row.description,
        )
        assert (record["final_label"], record["source"], record["rule_id"]) == (
            row.final_label,
            row.source,
            row.rule_id,
        )
        assert record["confidence"] == row.confidence
        assert [record["p_Synergistic"], record["p_Antagonistic"]] == row.probabilities
        assert record["reviewed_at"] == (row.reviewed_at.isoformat() if row.reviewed_at else None)
    interaction = Interaction.objects.get(pk=records[3]["interaction_id"])
    assert records[3]["drug_a"] == interaction.drug_a == "Ketoconazole ü"


def test_parquet_round_trips_exactly_and_is_written_in_row_groups(labeled_project, tmp_path):
    expected = list(iter_final_labels(project=labeled_project))
    path = tmp_path / "out.parquet"
    path.write_bytes(
        b"".join(
            stream_export(
                project=labeled_project,
                export_format="parquet",
                filters=FinalLabelFilters(),
                batch_size=2,
            )
        )
    )
    from annotations.services.export import writers

    small = b"".join(
        writers.iter_parquet(iter(expected), ["Synergistic", "Antagonistic"], row_group_size=2)
    )
    (tmp_path / "small.parquet").write_bytes(small)

    table = pq.read_table(path).to_pylist()
    assert pq.ParquetFile(tmp_path / "small.parquet").metadata.num_row_groups == 2
    assert [r["interaction_id"] for r in table] == [r.interaction_id for r in expected]
    for record, row in zip(table, expected, strict=True):
        assert record["description"] == row.description
        assert record["final_label"] == row.final_label
        assert record["confidence"] == row.confidence
        assert record["reviewed_at"] == row.reviewed_at
        assert [record["p_Synergistic"], record["p_Antagonistic"]] == row.probabilities
        assert record["flagged_unclear"] is False


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_the_same_data_exports_to_the_same_bytes(labeled_project, fmt):
    first = _export(labeled_project, fmt)
    second = _export(labeled_project, fmt, batch_size=1)

    assert first == second
    assert len(first) > 100


def test_an_empty_export_still_has_a_header_and_a_valid_parquet_file(project, tmp_path):
    assert _export(project, "csv").decode().startswith("interaction_id,drug_a,")
    assert _export(project, "jsonl") == b""
    (tmp_path / "e.parquet").write_bytes(_export(project, "parquet"))
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 0


def test_projects_with_three_classes_get_three_probability_columns(db):
    project = Project.objects.create(name="Three", label_classes=["Up", "Down", "None"])
    version = ModelVersionFactory(project=project, number=1, is_active=True)
    interaction = InteractionFactory(project=project)
    PredictionFactory(
        interaction=interaction,
        model_version=version,
        predicted_class="None",
        confidence=0.5,
        margin=0.2,
        probabilities=[0.2, 0.3, 0.5],
    )

    (row,) = _csv_rows(_export(project, "csv"))

    assert (row["p_Up"], row["p_Down"], row["p_None"], row["final_label"]) == (
        "0.2",
        "0.3",
        "0.5",
        "None",
    )


def test_the_dataset_card_counts_classes_sources_and_names_filters_and_model(labeled_project):
    filters = make_filters(project=labeled_project, sources=["review", "seed", "rule"])
    card = build_export_card(project=labeled_project, filters=filters, export_format="csv")

    assert card["rows"] == 3
    assert card["sources"] == {"review": 1, "seed": 1, "rule": 1, "model": 0}
    assert card["class_balance"]["Antagonistic"]["count"] == 2
    assert card["excluded"]["by_filters"] == 1
    assert card["filters"]["sources"] == ["review", "rule", "seed"]
    assert card["model_version"]["number"] == 3
    assert card["model_version"]["metrics"] == {"macro_f1": 0.91}
    assert card["data_as_of"] is not None
    assert "| Antagonistic | 2 |" in card_markdown(card)
    assert build_export_card(project=labeled_project, filters=filters, export_format="csv") == card


def test_invalid_filters_are_rejected_with_the_allowed_values(project):
    with pytest.raises(InvalidExportFilter, match="use: review, seed, rule, model"):
        make_filters(project=project, sources=["humans"])
    with pytest.raises(InvalidExportFilter, match="Synergistic, Antagonistic"):
        make_filters(project=project, classes=["Additive"])
    with pytest.raises(InvalidExportFilter, match="between 0 and 1"):
        make_filters(project=project, min_confidence=1.5)


def test_the_export_command_writes_the_file_and_its_card(labeled_project, tmp_path):
    out = tmp_path / "ddi.jsonl"
    stdout = io.StringIO()

    call_command(
        "export",
        "--project",
        labeled_project.name,
        "--format",
        "jsonl",
        "--out",
        str(out),
        "--sources",
        "review,model",
        "--no-progress",
        stdout=stdout,
    )

    assert len(out.read_text().splitlines()) == 2
    assert "Wrote 2 rows" in stdout.getvalue()
    card = json.loads((tmp_path / "ddi.jsonl.card.json").read_text())
    assert card["rows"] == 2 and card["format"] == "jsonl"
    assert (tmp_path / "ddi.jsonl.card.md").read_text().startswith("# Dataset card")
    assert not list(tmp_path.glob(".*partial"))


def test_the_export_command_names_the_problem_instead_of_a_traceback(labeled_project, tmp_path):
    with pytest.raises(CommandError, match="No project named 'Nope'"):
        call_command("export", "--project", "Nope", "--format", "csv", "--out", str(tmp_path / "x"))
    with pytest.raises(CommandError, match="Unknown class"):
        call_command(
            "export",
            "--project",
            labeled_project.name,
            "--format",
            "csv",
            "--out",
            str(tmp_path / "x.csv"),
            "--classes",
            "Additive",
            "--no-progress",
        )


def test_export_then_reimport_into_a_new_project_gives_the_same_labels(labeled_project, tmp_path):
    out = tmp_path / "export.csv"
    call_command(
        "export",
        "--project",
        labeled_project.name,
        "--format",
        "csv",
        "--out",
        str(out),
        "--no-progress",
    )
    Project.objects.create(name="Reimported", label_classes=list(labeled_project.label_classes))

    call_command(
        "import_interactions",
        str(out),
        "--project",
        "Reimported",
        "--label-column",
        "final_label",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )

    exported = {
        (r["drug_a"], r["drug_b"], r["description"]): r["final_label"]
        for r in _csv_rows(out.read_bytes())
    }
    reimported = {
        (
            label.interaction.drug_a,
            label.interaction.drug_b,
            label.interaction.description,
        ): label.label_class
        for label in Label.objects.filter(interaction__project__name="Reimported").select_related(
            "interaction"
        )
    }
    assert reimported == exported
    assert len(reimported) == 4


def test_export_rows_carry_their_provenance_source_file_line_import_and_note(
    project, reviewer_rita
):
    from annotations.models import ImportJob

    job = ImportJob.objects.create(project=project, file_name="drugbank.csv", sha256="0" * 64)
    imported, seeded, flagged = (
        InteractionFactory(
            project=project, source_file="drugbank.csv", source_line=n, import_job=job
        )
        for n in (2, 3, 4)
    )
    Label.objects.create(interaction=imported, label_class="Synergistic", source="import")
    Label.objects.create(interaction=seeded, label_class="Antagonistic", source="seed")
    version = ModelVersionFactory(project=project, is_active=True)
    PredictionFactory(interaction=flagged, model_version=version, predicted_class="Synergistic")
    Label.objects.create(
        interaction=flagged,
        status="unclear",
        source="review",
        author=reviewer_rita,
        note="=is this a dose effect?",
    )

    rows = {int(r["interaction_id"]): r for r in _csv_rows(_export(project, "csv"))}
    assert [rows[i.pk]["label_source"] for i in (imported, seeded, flagged)] == [
        "import",
        "seed",
        "review",
    ]
    assert rows[imported.pk]["source_file"] == "drugbank.csv"
    assert rows[imported.pk]["source_line"] == "2"
    assert rows[imported.pk]["import_id"] == str(job.pk)
    assert rows[flagged.pk]["note"] == "'=is this a dose effect?"  # kept inert for spreadsheets
    assert (rows[flagged.pk]["final_label"], rows[flagged.pk]["source"]) == ("Synergistic", "model")
    assert rows[flagged.pk]["flagged_unclear"] == "true"
    table = pq.read_table(io.BytesIO(_export(project, "parquet")))
    assert {"label_source", "note", "source_file", "source_line", "import_id"} <= set(
        table.column_names
    )


def test_a_parquet_export_embeds_its_dataset_card_in_the_footer(labeled_project):
    from annotations.services.export import PARQUET_CARD_KEY

    data = _export(labeled_project, "parquet")
    metadata = pq.read_metadata(io.BytesIO(data)).metadata
    card = json.loads(metadata[PARQUET_CARD_KEY.encode()])
    assert card["rows"] == pq.read_table(io.BytesIO(data)).num_rows > 0
    assert card["format"] == "parquet" and "label_source" in card["column_docs"]
