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
# DrugBank shows the id where its vocabulary has no name, and the sentence then uses the id
# (267 rows of the full file): the importer reads drug1_id/drug2_id the same way.
ID_COLUMNS = {DRUG_1: "drug1_id", DRUG_2: "drug2_id"}


@dataclass(frozen=True)
class SkippedRow:
    """A row that could not be used, with its line number and why."""

    line: int
    problem: str


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


def _value(row: dict, column: str) -> str:
    """The column's value; an empty drug name falls back to its DrugBank id column."""
    value = (row.get(column) or "").strip()
    if not value and column in ID_COLUMNS:
        value = (row.get(ID_COLUMNS[column]) or "").strip()
    return value


def iter_rows(
    path: Path,
    required: Sequence[str] = INTERACTION_COLUMNS,
    *,
    skipped: list[SkippedRow] | None = None,
) -> Iterator[dict]:
    """Stream the rows of a CSV as dicts after checking its header (UTF-8, BOM tolerated).

    A row with an empty required value (a drug name with no id to fall back to, an empty
    description) raises InputFileError naming its line; with ``skipped`` given it is appended
    there instead and the rest of the file is read.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        _check_columns(path, reader.fieldnames, required)
        for line, row in enumerate(reader, start=2):
            empty = [column for column in required if not _value(row, column)]
            if empty:
                problem = f"line {line}: column {empty[0]!r} is empty"
                if empty[0] in ID_COLUMNS:
                    problem += f" (and so is {ID_COLUMNS[empty[0]]!r})"
                if skipped is None:
                    raise InputFileError(f"{path}: {problem}")
                skipped.append(SkippedRow(line, problem))
                continue
            yield row


def blinded_text(row: dict) -> str:
    """The row's description with both drug names (or their ids) replaced by placeholders."""
    return blind(row[DESCRIPTION], _value(row, DRUG_1), _value(row, DRUG_2))


def read_labelled(path: Path) -> list[LabelledText]:
    """All rows of a labelled CSV (Drug 1, Drug 2, Interaction Description, label), blinded."""
    required = (*INTERACTION_COLUMNS, LABEL)
    return [
        LabelledText(blinded_text(row), row[LABEL].strip()) for row in iter_rows(path, required)
    ]
