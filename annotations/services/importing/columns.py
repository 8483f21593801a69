"""Which file column is which: the mapping, header aliases and the messages for a missing column."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import get_close_matches

from annotations.exceptions import ImportFormatError, ImportIssue

MAX_LISTED_COLUMNS = 30


@dataclass(frozen=True)
class ColumnMapping:
    """Which header names hold which field. Matching ignores case, spaces and underscores."""

    drug_a: str = "Drug 1"
    drug_b: str = "Drug 2"
    description: str = "Interaction Description"
    label: str | None = None
    external_id_a: str | None = "drug1_id"
    external_id_b: str | None = "drug2_id"
    split: str | None = "split"
    # Offset mappings: columns holding the character offsets of each mention (e.g. '29-36').
    offsets_a: str | None = None
    offsets_b: str | None = None
    offsets_end_inclusive: bool = True
    # Accept offsets off by up to this many characters when the shifted span is the mention.
    offset_tolerance: int = 0
    # Rows with the same value here (default: the same description) are one sentence; the
    # mentions of its other pairs become DRUG_OTHER. Only consecutive rows are grouped.
    group_by: str | None = None
    # A row identity (e.g. a pair id) that joins the content hash of offset mappings.
    key: str | None = None
    # Columns copied into Interaction.extra, by header name.
    extra_columns: tuple[str, ...] = ()
    # Label values meaning "no class given": the row is imported unlabeled (and reported).
    unlabeled_values: tuple[str, ...] = ()
    # Rows of these splits keep their label in extra["reference_label"] instead of a Label, so
    # training never sees them and evaluation can score predictions against them.
    held_out_splits: tuple[str, ...] = ()
    aliases: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "drug_a": ("drug_a", "drug a", "drug1"),
            "drug_b": ("drug_b", "drug b", "drug2"),
            "description": ("description", "interaction", "text", "sentence"),
        }
    )

    REQUIRED = ("drug_a", "drug_b", "description")
    OPTIONAL = ("external_id_a", "external_id_b", "split")

    @property
    def uses_offsets(self) -> bool:
        return bool(self.offsets_a and self.offsets_b)

    def required_keys(self) -> list[str]:
        """Field names that must be found in the header for this mapping."""
        keys = [*self.REQUIRED, *(("label",) if self.label else ())]
        if self.uses_offsets:
            keys += ["offsets_a", "offsets_b"]
        return keys + (["key"] if self.key else [])


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "", name.strip().lower())


def resolve_columns(
    header: list[str], mapping: ColumnMapping, *, file_name: str, delimiter: str | None
) -> dict[str, str]:
    """Map each field to the file's header name, or raise naming what is missing."""
    by_norm = {_norm(name): name for name in header}
    resolved: dict[str, str] = {}
    missing: list[str] = []
    wanted = mapping.required_keys()
    for key in wanted:
        expected = getattr(mapping, key)
        candidates = [expected, *mapping.aliases.get(key, ())]
        found = next((by_norm[_norm(c)] for c in candidates if _norm(c) in by_norm), None)
        if found is None:
            missing.append(expected)
        else:
            resolved[key] = found
    unused = [name for name in header if name not in resolved.values()]
    wrong_separator = _separator_hint(header, delimiter) if missing else ""
    if wrong_separator:
        # One problem, said once (not once per missing column).
        shown = repr(header[0][:200])
        message = f"{wrong_separator}; the header read as one column: {shown}"
        issues = [ImportIssue(1, None, message)]
    else:
        issues = [
            ImportIssue(1, expected, _missing_column_message(expected, header, unused))
            for expected in missing
        ]
    for key in (*ColumnMapping.OPTIONAL, "group_by"):
        expected = getattr(mapping, key)
        if expected and _norm(expected) in by_norm:
            resolved[key] = by_norm[_norm(expected)]
    for name in mapping.extra_columns:
        if _norm(name) in by_norm:
            resolved[f"extra:{name}"] = by_norm[_norm(name)]
    if issues:
        raise ImportFormatError(file_name, issues)
    return resolved


def _separator_hint(header: list[str], delimiter: str | None) -> str:
    """'the header looks semicolon-separated but ...' when a one-column header holds another
    separator; "" otherwise."""
    if delimiter and len(header) == 1:
        for other, name in ((";", "semicolon"), ("\t", "tab"), (",", "comma"), ("|", "pipe")):
            if other != delimiter and other in header[0]:
                expected_name = {",": "comma", "\t": "tab"}.get(delimiter, repr(delimiter))
                return (
                    f"the header looks {name}-separated but a {expected_name}-separated file "
                    "was expected"
                )
    return ""


def column_alias_notes(columns: dict[str, str], mapping: ColumnMapping) -> list[str]:
    """ "read 'DrugA' as 'Drug 1'" for each required column found under another name."""
    return [
        f"read {columns[key]!r} as {getattr(mapping, key)!r}"
        for key in mapping.required_keys()
        if key in columns and _norm(columns[key]) != _norm(getattr(mapping, key))
    ]


def _missing_column_message(expected: str, header: list[str], unused: list[str]) -> str:
    # A hostile header can hold 100k names: show the first few, never a megabyte of report.
    shown = ", ".join(repr(h[:100]) for h in header[:MAX_LISTED_COLUMNS]) or "none"
    if len(header) > MAX_LISTED_COLUMNS:
        shown += f" and {len(header) - MAX_LISTED_COLUMNS:,} more"
    message = f"missing column; found columns: {shown}"
    close = get_close_matches(expected, unused, n=1, cutoff=0.6)
    if close:
        message += f"; did you mean {close[0]!r}?"
    return message
