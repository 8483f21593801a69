"""Named column mappings for known corpora (`manage.py import_interactions --format NAME`)."""

from __future__ import annotations

from annotations.services.importing import ColumnMapping

DDI2013_CLASSES = ["mechanism", "effect", "advise", "int", "negative"]
DDI2013_POSITIVE_CLASSES = ["mechanism", "effect", "advise", "int"]

# The DDI Extraction 2013 corpus as one row per drug pair (Herrero-Zazo et al. 2013). Mentions are
# located by their END-INCLUSIVE offsets, the other drugs of the sentence become DRUG_OTHER, the
# pair id keeps pairs apart, and the test split's classes are kept aside as reference labels.
# The one train pair typed "unknown" (an interaction without a type) is imported unlabeled. Four
# pairs of the corpus have offsets off by one character ("(R)-warfarin"); a tolerance of 1
# repairs them and each repair is reported.
DDI2013 = ColumnMapping(
    drug_a="e1_text",
    drug_b="e2_text",
    description="sentence",
    label="type",
    external_id_a=None,
    external_id_b=None,
    split="split",
    offsets_a="e1_offset",
    offsets_b="e2_offset",
    offsets_end_inclusive=True,
    offset_tolerance=1,
    group_by="sentence_id",
    key="pair_id",
    extra_columns=(
        "pair_id",
        "sentence_id",
        "doc_id",
        "source",
        "e1_type",
        "e2_type",
        "e1_offset",
        "e2_offset",
    ),
    unlabeled_values=("unknown",),
    held_out_splits=("test",),
)

# name -> (mapping, classes for --create-project)
FORMATS: dict[str, tuple[ColumnMapping, list[str] | None]] = {
    "ddi2013": (DDI2013, DDI2013_CLASSES),
}
