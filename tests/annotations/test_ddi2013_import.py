"""DDI-2013 import: offsets drive blinding, pairs stay distinct, test labels are kept aside."""

from __future__ import annotations

import csv
import io
from itertools import islice
from pathlib import Path

import pytest
from django.core.management import call_command

from annotations.exceptions import ImportFormatError
from annotations.models import ImportJob, Interaction, Label, Project
from annotations.services.highlighting import highlight_mentions
from annotations.services.import_formats import DDI2013, DDI2013_CLASSES
from annotations.services.importing import import_interactions

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
COLUMNS = [
    "split",
    "source",
    "file",
    "doc_id",
    "sentence_id",
    "pair_id",
    "e1_text",
    "e1_type",
    "e1_offset",
    "e2_text",
    "e2_type",
    "e2_offset",
    "ddi",
    "type",
    "sentence",
]
S1 = "Aspirin increases the effect of warfarin but not of heparin."
# "loop ... diuretics" is one discontinuous mention; "thiazide diuretics" overlaps it.
S2 = "NSAIDs can reduce the effects of loop and thiazide diuretics."


def offsets(sentence: str, *words: str) -> str:
    """End-inclusive offsets of the given words (first occurrence each), joined with ';'."""
    parts = []
    for word in words:
        start = sentence.index(word)
        parts.append(f"{start}-{start + len(word) - 1}")
    return ";".join(parts)


def pair(sentence_id, n, e1, o1, e2, o2, label, sentence, split="train"):
    return {
        "split": split,
        "source": "DrugBank",
        "file": "x.xml",
        "doc_id": sentence_id.rsplit(".", 1)[0],
        "sentence_id": sentence_id,
        "pair_id": f"{sentence_id}.p{n}",
        "e1_text": e1,
        "e1_type": "drug",
        "e1_offset": o1,
        "e2_text": e2,
        "e2_type": "drug",
        "e2_offset": o2,
        "ddi": "false" if label == "negative" else "true",
        "type": label,
        "sentence": sentence,
    }


def write_pairs(tmp_path: Path, rows: list[dict], name: str = "ddi.csv") -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = tmp_path / name
    path.write_text(buffer.getvalue())
    return path


def small_corpus() -> list[dict]:
    a, w, h = offsets(S1, "Aspirin"), offsets(S1, "warfarin"), offsets(S1, "heparin")
    loop = offsets(S2, "loop", "diuretics")
    return [
        pair("D.d1.s0", 0, "Aspirin", a, "warfarin", w, "effect", S1),
        pair("D.d1.s0", 1, "Aspirin", a, "heparin", h, "negative", S1),
        pair("D.d1.s0", 2, "warfarin", w, "heparin", h, "negative", S1),
        pair("D.d1.s1", 0, "NSAIDs", offsets(S2, "NSAIDs"), "loop diuretics", loop, "advise", S2),
        pair(
            "D.d1.s1",
            1,
            "NSAIDs",
            offsets(S2, "NSAIDs"),
            "thiazide diuretics",
            offsets(S2, "thiazide diuretics"),
            "mechanism",
            S2,
            split="test",
        ),
        pair("D.d2.s0", 0, "Aspirin", a, "warfarin", w, "unknown", S1),
    ]


@pytest.fixture
def ddi_project(db) -> Project:
    return Project.objects.create(name="DDI 2013", label_classes=list(DDI2013_CLASSES))


def by_pair(pair_id: str) -> Interaction:
    return Interaction.objects.get(extra__pair_id=pair_id)


@pytest.mark.django_db
class TestOffsetBlinding:
    def test_each_pair_blinds_its_own_mentions_and_the_sentences_others_as_drug_other(
        self, ddi_project, tmp_path
    ):
        outcome = import_interactions(
            project=ddi_project, path=write_pairs(tmp_path, small_corpus()), mapping=DDI2013
        )

        assert outcome.job.rows_read == 6
        assert Interaction.objects.count() == 6
        assert by_pair("D.d1.s0.p0").blinded_text == (
            "DRUG_A increases the effect of DRUG_B but not of DRUG_OTHER."
        )
        assert by_pair("D.d1.s0.p2").blinded_text == (
            "DRUG_OTHER increases the effect of DRUG_A but not of DRUG_B."
        )

    def test_a_discontinuous_mention_blinds_every_part_and_overlapping_others_are_dropped(
        self, ddi_project, tmp_path
    ):
        import_interactions(
            project=ddi_project, path=write_pairs(tmp_path, small_corpus()), mapping=DDI2013
        )

        loop = by_pair("D.d1.s1.p0")
        assert loop.blinded_text == "DRUG_A can reduce the effects of DRUG_B and thiazide DRUG_B."
        thiazide = by_pair("D.d1.s1.p1")
        assert thiazide.blinded_text == "DRUG_A can reduce the effects of DRUG_OTHER and DRUG_B."

    def test_the_same_sentence_in_another_document_stays_a_separate_interaction(
        self, ddi_project, tmp_path
    ):
        import_interactions(
            project=ddi_project, path=write_pairs(tmp_path, small_corpus()), mapping=DDI2013
        )

        twins = Interaction.objects.filter(drug_a="Aspirin", drug_b="warfarin", description=S1)
        assert twins.count() == 2
        assert len({twin.content_hash for twin in twins}) == 2
        # The second document's sentence has no other pair, so no DRUG_OTHER there.
        assert by_pair("D.d2.s0.p0").blinded_text == (
            "DRUG_A increases the effect of DRUG_B but not of heparin."
        )

    def test_the_same_names_at_different_offsets_are_two_interactions(self, ddi_project, tmp_path):
        sentence = "Aspirin and warfarin; later Aspirin and warfarin again."
        first = offsets(sentence, "Aspirin")
        later = sentence.index("Aspirin", 1)
        second = f"{later}-{later + 6}"
        warfarin = offsets(sentence, "warfarin")
        # Same names, same sentence, same pair key: only the offsets of drug A differ.
        rows = [
            pair("D.d3.s0", 0, "Aspirin", first, "warfarin", warfarin, "effect", sentence),
            pair("D.d3.s0", 0, "Aspirin", second, "warfarin", warfarin, "effect", sentence),
        ]

        import_interactions(project=ddi_project, path=write_pairs(tmp_path, rows), mapping=DDI2013)

        blinded = sorted(Interaction.objects.values_list("blinded_text", flat=True))
        assert blinded == [
            "DRUG_A and DRUG_B; later DRUG_OTHER and warfarin again.",
            "DRUG_OTHER and DRUG_B; later DRUG_A and warfarin again.",
        ]

    def test_the_review_page_highlights_the_pairs_own_mentions_not_every_occurrence(
        self, ddi_project, tmp_path
    ):
        sentence = "Aspirin and warfarin; later Aspirin and warfarin again."
        later = sentence.index("Aspirin", 1)
        rows = [
            pair(
                "D.d4.s0", 0, "Aspirin", f"{later}-{later + 6}", "warfarin",
                offsets(sentence, "warfarin"), "effect", sentence,
            )
        ]  # fmt: skip
        import_interactions(project=ddi_project, path=write_pairs(tmp_path, rows), mapping=DDI2013)
        row = by_pair("D.d4.s0.p0")

        html = highlight_mentions(row.description, row.drug_a, row.drug_b, extra=row.extra)

        assert row.extra["spans_a"] == [[later, later + 7]]
        assert html.startswith('Aspirin and <mark class="drug drug-b" title="Drug B">warfarin')
        assert 'later <mark class="drug drug-a" title="Drug A">Aspirin</mark> and warfarin' in html

    def test_offsets_off_by_one_are_repaired_within_the_tolerance_and_reported(
        self, ddi_project, tmp_path
    ):
        rows = small_corpus()[:1]
        start = S1.index("warfarin")
        rows[0]["e2_offset"] = f"{start - 1}-{start + 6}"  # " warfari"

        outcome = import_interactions(
            project=ddi_project, path=write_pairs(tmp_path, rows), mapping=DDI2013
        )

        assert by_pair("D.d1.s0.p0").blinded_text.startswith(
            "DRUG_A increases the effect of DRUG_B"
        )
        assert outcome.notes == [
            f"line 2: column 'e2_offset': offsets {start - 1}-{start + 6} are off by +1 "
            f"characters; used {start}-{start + 8} (end exclusive)"
        ]


@pytest.mark.django_db
class TestLabelsAndSplits:
    def test_train_labels_become_seed_labels_and_test_labels_stay_reference_only(
        self, ddi_project, tmp_path
    ):
        import_interactions(
            project=ddi_project, path=write_pairs(tmp_path, small_corpus()), mapping=DDI2013
        )

        assert by_pair("D.d1.s0.p0").label.label_class == "effect"
        assert by_pair("D.d1.s0.p0").split == "train"
        held_out = by_pair("D.d1.s1.p1")
        assert held_out.split == "test"
        assert held_out.extra["reference_label"] == "mechanism"
        assert not Label.objects.filter(interaction=held_out).exists()
        assert held_out.extra["sentence_id"] == "D.d1.s1"
        assert held_out.extra["e2_offset"] == offsets(S2, "thiazide diuretics")

    def test_the_unknown_type_imports_the_pair_without_a_label_and_says_so(
        self, ddi_project, tmp_path
    ):
        outcome = import_interactions(
            project=ddi_project, path=write_pairs(tmp_path, small_corpus()), mapping=DDI2013
        )

        assert not Label.objects.filter(interaction=by_pair("D.d2.s0.p0")).exists()
        assert outcome.job.labels_created == 4
        assert outcome.notes == ["line 7: label 'unknown' means no class; imported unlabeled"]

    def test_importing_the_file_twice_adds_nothing(self, ddi_project, tmp_path):
        path = write_pairs(tmp_path, small_corpus())
        import_interactions(project=ddi_project, path=path, mapping=DDI2013)
        again = write_pairs(tmp_path, [*small_corpus(), small_corpus()[0]], name="again.csv")

        outcome = import_interactions(project=ddi_project, path=again, mapping=DDI2013)

        assert outcome.job.interactions_created == 0
        assert Interaction.objects.count() == 6


@pytest.mark.django_db
class TestBadOffsets:
    def import_fails(self, project, tmp_path, rows) -> str:
        with pytest.raises(ImportFormatError) as caught:
            import_interactions(project=project, path=write_pairs(tmp_path, rows), mapping=DDI2013)
        assert Interaction.objects.count() == 0
        assert Label.objects.count() == 0
        assert ImportJob.objects.get().state == ImportJob.State.FAILED
        return str(caught.value)

    def test_offsets_that_select_other_text_abort_the_whole_import_naming_line_and_column(
        self, ddi_project, tmp_path
    ):
        rows = small_corpus()
        rows[3]["e1_offset"] = "11-16"

        message = self.import_fails(ddi_project, tmp_path, rows)

        assert (
            "line 5, column 'e1_offset': offsets 11-16 select 'reduce', "
            "expected the mention 'NSAIDs'"
        ) in message

    def test_offsets_outside_the_sentence_are_reported(self, ddi_project, tmp_path):
        rows = small_corpus()
        rows[1]["e2_offset"] = "200-206"

        message = self.import_fails(ddi_project, tmp_path, rows)

        assert (
            f"line 3, column 'e2_offset': offset 206 falls outside the sentence "
            f"({len(S1)} characters)"
        ) in message

    def test_malformed_offsets_are_reported_with_the_expected_shape(self, ddi_project, tmp_path):
        rows = small_corpus()
        rows[0]["e1_offset"] = "0..6"

        message = self.import_fails(ddi_project, tmp_path, rows)

        assert "line 2, column 'e1_offset': expected character offsets like '29-36'" in message

    def test_an_unknown_class_is_still_an_error(self, ddi_project, tmp_path):
        rows = small_corpus()
        rows[2]["type"] = "synergy"

        message = self.import_fails(ddi_project, tmp_path, rows)

        assert "line 4, column 'type': unknown class 'synergy'" in message


@pytest.mark.django_db
def test_the_command_with_format_ddi2013_creates_a_five_class_project(tmp_path):
    out = io.StringIO()
    path = write_pairs(tmp_path, small_corpus())

    call_command(
        "import_interactions", str(path), "--project", "DDI", "--create-project",
        "--format", "ddi2013", stdout=out,
    )  # fmt: skip

    project = Project.objects.get(name="DDI")
    assert project.label_classes == DDI2013_CLASSES
    assert project.interactions.count() == 6
    assert "6 rows read, 6 new interactions, 4 new labels" in out.getvalue()
    assert "note: line 7: label 'unknown'" in out.getvalue()


@pytest.mark.django_db
def test_the_real_corpus_first_500_pairs_import_with_offset_blinding(ddi_project, tmp_path):
    source = SHARED / "ddi2013_pairs.csv"
    with source.open(newline="") as handle:
        rows = list(islice(csv.DictReader(handle), 500))
    path = write_pairs(tmp_path, rows)

    outcome = import_interactions(project=ddi_project, path=path, mapping=DDI2013)

    assert outcome.job.rows_read == 500
    assert Interaction.objects.count() == 500
    first = by_pair("DDI-DrugBank.d519.s3.p0")
    assert first.blinded_text == (
        "Laboratory Tests Response to DRUG_A should be monitored by measuring serum total DRUG_B "
        "concentrations just prior to administration on Day 29 and every 8 weeks thereafter."
    )
    assert by_pair("DDI-DrugBank.d297.s1.p1").blinded_text == (
        "Population pharmacokinetic analyses revealed that DRUG_A, DRUG_OTHER, DRUG_B, and "
        "DRUG_OTHER did not influence DRUG_OTHER clearance."
    )
    by_id = {row["pair_id"]: row for row in rows}
    for interaction in Interaction.objects.all():
        row = by_id[interaction.extra["pair_id"]]
        text = interaction.blinded_text
        assert "DRUG_A" in text and "DRUG_B" in text, row["pair_id"]
        assert interaction.split == row["split"]
        pairs_in_sentence = sum(r["sentence_id"] == row["sentence_id"] for r in rows)
        assert ("DRUG_OTHER" in text) == (pairs_in_sentence > 1) or ";" in row["e1_offset"] + row[
            "e2_offset"
        ]
        if row["split"] == "test":
            assert interaction.extra["reference_label"] == row["type"]
        elif row["type"] != "unknown":
            assert interaction.label.label_class == row["type"]
