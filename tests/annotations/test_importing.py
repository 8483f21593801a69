"""Import: the real DrugBank files, the three formats, idempotency, and every bad input."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotations.exceptions import ImportFormatError
from annotations.models import ImportJob, Interaction, Label, LabelEvent
from annotations.services.importing import ColumnMapping, import_interactions

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
HEADER = "Drug 1,Drug 2,Interaction Description"
GOOD_ROW = "Ibuprofen,Furosemide,Ibuprofen may decrease the diuretic activities of Furosemide."


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def import_fails(project, path: Path, **kwargs) -> str:
    """Import and return the error text, asserting that nothing of the file was kept."""
    with pytest.raises(ImportFormatError) as caught:
        import_interactions(project=project, path=path, **kwargs)
    assert Interaction.objects.count() == 0
    assert Label.objects.count() == 0
    assert LabelEvent.objects.count() == 0
    assert ImportJob.objects.get().state == ImportJob.State.FAILED
    return str(caught.value)


@pytest.mark.django_db
class TestRealDrugBankFiles:
    def test_the_sample_imports_completely_with_its_43_sentence_patterns(self, project):
        outcome = import_interactions(project=project, path=SHARED / "drugbank_ddi_sample.csv")
        assert outcome.job.rows_read == 7073
        assert Interaction.objects.filter(project=project).count() == 7073
        assert Interaction.objects.values("pattern_hash").distinct().count() == 43
        row = Interaction.objects.get(drug_a="Ibuprofen", drug_b="Furosemide")
        assert row.blinded_text == "DRUG_A may decrease the diuretic activities of DRUG_B."
        assert row.source_file == "drugbank_ddi_sample.csv" and row.source_line == 5

    def test_seed_labels_attach_to_the_sample_rows_without_duplicating_them(self, project):
        import_interactions(project=project, path=SHARED / "drugbank_ddi_sample.csv")
        outcome = import_interactions(
            project=project,
            path=SHARED / "drugbank_ddi_seed_labels.csv",
            mapping=ColumnMapping(label="label"),
        )
        assert outcome.job.interactions_created == 0
        assert Interaction.objects.count() == 7073
        assert Label.objects.filter(source=Label.Source.SEED).count() == 192
        assert LabelEvent.objects.filter(action=LabelEvent.Action.CREATE).count() == 192
        assert set(Label.objects.values_list("label_class", flat=True)) == {
            "Synergistic",
            "Antagonistic",
        }

    def test_importing_the_same_file_twice_adds_nothing(self, project):
        first = import_interactions(project=project, path=SHARED / "drugbank_ddi_sample.csv")
        second = import_interactions(project=project, path=SHARED / "drugbank_ddi_sample.csv")
        assert second.already_imported and second.job == first.job
        assert Interaction.objects.count() == 7073


@pytest.mark.django_db
class TestFormatsAndIdempotency:
    def test_tsv_and_jsonl_import_the_same_fields(self, project, tmp_path):
        tsv = write(
            tmp_path,
            "a.tsv",
            f"Drug 1\tDrug 2\tInteraction Description\n{GOOD_ROW.replace(',', chr(9))}\n",
        )
        record = {
            "Drug 1": "Warfarin",
            "Drug 2": "Aspirin",
            "Interaction Description": "Warfarin may increase the anticoagulant activities of Aspirin.",
        }
        jsonl = write(tmp_path, "b.jsonl", json.dumps(record) + "\n\n")
        import_interactions(project=project, path=tsv)
        import_interactions(project=project, path=jsonl)
        assert Interaction.objects.count() == 2
        assert Interaction.objects.get(drug_a="Warfarin").blinded_text == (
            "DRUG_A may increase the anticoagulant activities of DRUG_B."
        )

    def test_overlapping_file_adds_only_new_rows_and_changed_text_is_new(self, project, tmp_path):
        import_interactions(
            project=project, path=write(tmp_path, "a.csv", f"{HEADER}\n{GOOD_ROW}\n")
        )
        changed = GOOD_ROW.replace("may decrease", "can decrease")
        import_interactions(
            project=project, path=write(tmp_path, "b.csv", f"{HEADER}\n{GOOD_ROW}\n{changed}\n")
        )
        assert Interaction.objects.count() == 2

    def test_header_names_match_ignoring_case_and_bom_and_reordering(self, project, tmp_path):
        content = "\ufeffinteraction description,drug 2,DRUG 1\n" + (
            '"Ibuprofen may decrease the diuretic activities of Furosemide.",Furosemide,Ibuprofen\n'
        )
        import_interactions(project=project, path=write(tmp_path, "bom.csv", content))
        assert Interaction.objects.get().drug_a == "Ibuprofen"

    def test_utf16_with_bom_is_decoded(self, project, tmp_path):
        path = write(tmp_path, "u16.csv", f"{HEADER}\n{GOOD_ROW}\n".encode("utf-16"))
        import_interactions(project=project, path=path)
        assert Interaction.objects.count() == 1

    def test_quoted_fields_with_commas_and_newlines_parse(self, project, tmp_path):
        row = 'Ibuprofen,Furosemide,"Ibuprofen, an NSAID,\nmay decrease the ""diuretic"" activities of Furosemide."'
        import_interactions(project=project, path=write(tmp_path, "q.csv", f"{HEADER}\n{row}\n"))
        assert '"diuretic"' in Interaction.objects.get().description

    def test_an_empty_name_with_a_drugbank_id_falls_back_to_the_id(self, project, tmp_path):
        content = (
            "Drug 1,Drug 2,Interaction Description,drug1_id,drug2_id\n"
            "Rifabutin,,The metabolism of DB09396 can be increased when combined with Rifabutin."
            ",DB00615,DB09396\n"
        )
        import_interactions(project=project, path=write(tmp_path, "ids.csv", content))
        row = Interaction.objects.get()
        assert (row.drug_b, row.external_id_a) == ("DB09396", "DB00615")
        assert row.blinded_text.startswith("The metabolism of DRUG_B")

    def test_label_classes_match_case_insensitively_to_the_project_spelling(
        self, project, tmp_path
    ):
        path = write(tmp_path, "l.csv", f"{HEADER},label\n{GOOD_ROW},antagonistic\n")
        import_interactions(project=project, path=path, mapping=ColumnMapping(label="label"))
        assert Label.objects.get().label_class == "Antagonistic"

    def test_an_existing_label_is_never_overwritten_by_an_import(self, project, tmp_path):
        import_interactions(
            project=project,
            path=write(tmp_path, "a.csv", f"{HEADER},label\n{GOOD_ROW},Antagonistic\n"),
            mapping=ColumnMapping(label="label"),
        )
        import_interactions(
            project=project,
            path=write(tmp_path, "b.csv", f"{HEADER},label\n{GOOD_ROW},Synergistic\n"),
            mapping=ColumnMapping(label="label"),
        )
        assert Label.objects.get().label_class == "Antagonistic"


@pytest.mark.django_db
class TestBadInputLeavesNothingBehind:
    def test_empty_file(self, project, tmp_path):
        assert "the file is empty" in import_fails(project, write(tmp_path, "e.csv", ""))

    def test_header_without_rows(self, project, tmp_path):
        message = import_fails(project, write(tmp_path, "h.csv", HEADER + "\n"))
        assert "h.csv: the file has a header but no data rows" in message

    def test_misspelled_column_is_named_with_a_suggestion(self, project, tmp_path):
        path = write(tmp_path, "m.csv", f"Drug 1,Drug Two,Interaction Description\n{GOOD_ROW}\n")
        message = import_fails(project, path)
        assert "m.csv: line 1, column 'Drug 2': missing column" in message
        assert "did you mean 'Drug Two'?" in message

    def test_a_header_alias_it_accepted_is_reported(self, project, tmp_path):
        path = write(tmp_path, "alias.csv", f"drug_a,Drug 2,Sentence\n{GOOD_ROW}\n")
        outcome = import_interactions(project=project, path=path)
        assert outcome.notes[:2] == [
            "read 'drug_a' as 'Drug 1'",
            "read 'Sentence' as 'Interaction Description'",
        ]
        assert Interaction.objects.count() == 1

    def test_wrong_delimiter_is_detected(self, project, tmp_path):
        path = write(
            tmp_path, "semi.csv", f"{HEADER.replace(',', ';')}\n{GOOD_ROW.replace(',', ';')}\n"
        )
        message = import_fails(project, path)
        assert "semicolon-separated but a comma-separated file was expected" in message
        assert message.count("semicolon-separated") == 1  # said once, not once per column
        assert "the header read as one column: 'Drug 1;Drug 2;Interaction Description'" in message

    def test_bad_encoding_names_the_line_and_byte(self, project, tmp_path):
        content = (
            f"{HEADER}\n{GOOD_ROW}\n".encode()
            + "Café,Furosemide,Café may decrease Furosemide.\n".encode("latin-1")
        )
        message = import_fails(project, write(tmp_path, "latin.csv", content))
        assert (
            "latin.csv: line 3: not valid utf-8 (byte 0xe9 at column 4); save the file as UTF-8"
            in message
        )

    def test_empty_drug_name(self, project, tmp_path):
        path = write(
            tmp_path, "d.csv", f"{HEADER}\n{GOOD_ROW}\nIbuprofen,,Ibuprofen may do things.\n"
        )
        assert "d.csv: line 3, column 'Drug 2': empty drug name" in import_fails(project, path)

    def test_description_that_names_neither_drug(self, project, tmp_path):
        path = write(tmp_path, "n.csv", f"{HEADER}\nAspirin,Heparin,This sentence names no drug.\n")
        message = import_fails(project, path)
        assert (
            "line 2, column 'Interaction Description': the description names neither 'Aspirin' nor 'Heparin'"
            in message
        )

    def test_unknown_label_class_lists_the_expected_ones(self, project, tmp_path):
        path = write(tmp_path, "u.csv", f"{HEADER},label\n{GOOD_ROW},Synergy\n")
        message = import_fails(project, path, mapping=ColumnMapping(label="label"))
        assert (
            "line 2, column 'label': unknown class 'Synergy'; expected one of Synergistic, Antagonistic"
            in message
        )

    def test_ten_megabyte_field(self, project, tmp_path):
        huge = "x" * (10 * 1024 * 1024)
        path = write(tmp_path, "big.csv", f'{HEADER}\nIbuprofen,Furosemide,"Ibuprofen {huge}"\n')
        message = import_fails(project, path)
        assert "big.csv: line 2:" in message and "longer than" in message

    def test_binary_file(self, project, tmp_path):
        path = tmp_path / "archive.csv"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("x.csv", f"{HEADER}\n{GOOD_ROW}\n" * 100)
        message = import_fails(project, path)
        assert "archive.csv: line 1: this is a zip archive, not a text file" in message

    def test_nul_bytes(self, project, tmp_path):
        path = write(tmp_path, "nul.csv", f"{HEADER}\n{GOOD_ROW}\n".encode() + b"a\x00b,c,d\n")
        assert "NUL" in import_fails(project, path)

    def test_unclosed_quote(self, project, tmp_path):
        path = write(
            tmp_path,
            "q.csv",
            f'{HEADER}\n{GOOD_ROW}\nIbuprofen,Furosemide,"Ibuprofen never closes\n',
        )
        assert "line 3: a quoted field is never closed" in import_fails(project, path)

    def test_wrong_column_count(self, project, tmp_path):
        path = write(tmp_path, "c.csv", f"{HEADER}\n{GOOD_ROW}\nIbuprofen,Furosemide,x,y,z\n")
        assert "line 3: expected 3 columns, got 5" in import_fails(project, path)

    def test_invalid_json_line(self, project, tmp_path):
        good = json.dumps(
            {
                "Drug 1": "Ibuprofen",
                "Drug 2": "Furosemide",
                "Interaction Description": "Ibuprofen x",
            }
        )
        path = write(tmp_path, "j.jsonl", good + '\n{"Drug 1": "A",\n')
        assert "j.jsonl: line 2: invalid JSON at column" in import_fails(project, path)

    def test_a_bad_row_after_many_batches_rolls_back_every_batch(self, project, tmp_path, settings):
        settings.DDI_IMPORT_BATCH_SIZE = 10
        rows = [
            f"Drug{i},Other{i},Drug{i} may increase the activities of Other{i}." for i in range(95)
        ]
        path = write(tmp_path, "late.csv", "\n".join([HEADER, *rows, "Drug,,Drug oops."]) + "\n")
        assert "line 97, column 'Drug 2': empty drug name" in import_fails(project, path)

    def test_several_problems_are_reported_together(self, project, tmp_path):
        path = write(tmp_path, "many.csv", f"{HEADER}\n,B,x\nA,,y\n{GOOD_ROW}\n")
        message = import_fails(project, path)
        assert "line 2, column 'Drug 1'" in message and "line 3, column 'Drug 2'" in message


@pytest.mark.django_db
def test_the_command_prints_a_specific_error_without_a_traceback(project, tmp_path):
    path = write(tmp_path, "bad.csv", f"{HEADER}\nIbuprofen,,Ibuprofen x.\n")
    with pytest.raises(CommandError, match=r"bad.csv: line 2, column 'Drug 2': empty drug name"):
        call_command("import_interactions", str(path))
    assert Interaction.objects.count() == 0


@pytest.mark.django_db
def test_the_command_imports_labels_into_a_new_project_with_its_own_classes(tmp_path):
    path = write(tmp_path, "n.csv", f"{HEADER},label\n{GOOD_ROW},int\n")
    call_command(
        "import_interactions",
        str(path),
        "--project",
        "Five",
        "--create-project",
        "--classes",
        "mechanism,effect,advise,int,negative",
        "--label-column",
        "label",
    )
    assert Label.objects.get().label_class == "int"
