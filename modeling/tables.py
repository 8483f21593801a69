"""Reading interaction CSV files (DrugBank layout) for the command line, with actionable errors."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from modeling.blinding import blind

DRUG_1 = "Drug 1"
DRUG_2 = "Drug 2"
DESCRIPTION = "Interaction Description"
LABEL = "label"
INTERACTION_COLUMNS = (DRUG_1, DRUG_2, DESCRIPTION)


class InputFileError(ValueError):
    """A CSV file the user gave cannot be used; the message names the file and what to fix."""


@dataclass(frozen=True)
class LabelledText:
    """One blinded description and its label, from a labelled CSV."""

    text: str
    label: str


def _check_columns(path: Path, header: Sequence[str] | None, required: Sequence[str]) -> None:
    """Raise InputFileError naming the file, the missing and the expected columns."""
    present = list(header or [])
    missing = [column for column in required if column not in present]
    if missing:
        raise InputFileError(
            f"{path}: missing column(s) {missing}; expected columns {list(required)}, "
            f"found {present}"
        )


def iter_rows(path: Path, required: Sequence[str] = INTERACTION_COLUMNS) -> Iterator[dict]:
    """Stream the rows of a CSV as dicts after checking its header (UTF-8, BOM tolerated)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        _check_columns(path, reader.fieldnames, required)
        for line, row in enumerate(reader, start=2):
            for column in required:
                if not (row.get(column) or "").strip():
                    raise InputFileError(f"{path}: line {line}: column {column!r} is empty")
            yield row


def blinded_text(row: dict) -> str:
    """The row's description with both drug names replaced by placeholders."""
    return blind(row[DESCRIPTION], row[DRUG_1], row[DRUG_2])


def read_labelled(path: Path) -> list[LabelledText]:
    """All rows of a labelled CSV (Drug 1, Drug 2, Interaction Description, label), blinded."""
    required = (*INTERACTION_COLUMNS, LABEL)
    return [
        LabelledText(blinded_text(row), row[LABEL].strip()) for row in iter_rows(path, required)
    ]
