"""One row's checks and blinding: validation, mention offsets, the sentence-wise DRUG_OTHER
blinding, and the content and pattern hashes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from annotations.exceptions import ImportIssue
from annotations.models import Project
from annotations.services.importing.columns import ColumnMapping
from annotations.services.ml import (
    Mention,
    OffsetProblem,
    blind_pair,
    locate_mention,
    mentions,
)


def content_hash(drug_a: str, drug_b: str, description: str, identity: str = "") -> str:
    """Idempotency key of an interaction: the exact text of its three fields.

    `identity` (offset mappings: the mention offsets and the row key) tells apart two pairs with
    the same names in the same sentence; empty, the key is the one of plain imports.
    """
    parts = (drug_a, drug_b, description, *((identity,) if identity else ()))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def pattern_hash(blinded_text: str) -> str:
    """Groups interactions that share one sentence pattern once the drugs are blinded."""
    return hashlib.sha256(blinded_text.encode()).hexdigest()


@dataclass(frozen=True)
class Row:
    line: int
    drug_a: str
    drug_b: str
    description: str
    label: str | None
    external_id_a: str
    external_id_b: str
    split: str
    # Offset mappings only: the located mentions, the sentence key, the hash identity and the
    # blinded text (filled in once the whole sentence has been read).
    mentions: tuple[Mention, Mention] | None = None
    group: str = ""
    identity: str = ""
    blinded: str = ""
    extra: dict = field(default_factory=dict)


def validated_rows(
    rows: Iterator,
    columns: dict[str, str],
    project: Project,
    mapping: ColumnMapping,
    notes: list[str],
) -> Iterator[Row | ImportIssue]:
    """Check each record; yield a clean Row or one ImportIssue per problem.

    Rows imported with a remark (an "unlabeled" label value, corrected offsets) add a line to
    `notes`.
    """
    classes = {name.casefold(): name for name in project.label_classes}
    unlabeled = {value.casefold() for value in mapping.unlabeled_values}
    held_out = {value.casefold() for value in mapping.held_out_splits}
    for record in rows:
        if isinstance(record, ImportIssue):
            yield record
            continue
        fields = record.fields
        values = {key: (fields.get(name) or "").strip() for key, name in columns.items()}
        for side in ("a", "b"):
            # DrugBank shows the id where its vocabulary has no name; the sentence uses the id.
            if not values[f"drug_{side}"] and values.get(f"external_id_{side}"):
                values[f"drug_{side}"] = values[f"external_id_{side}"]
        label = values.get("label") or None
        if label and label.casefold() in unlabeled:
            notes.append(f"line {record.line}: label {label!r} means no class; imported unlabeled")
            label = values["label"] = None
        problem = _row_problem(
            record.line, values, columns, classes, by_name=not mapping.uses_offsets
        )
        if problem is None and mapping.uses_offsets:
            problem = _locate_mentions(record.line, values, columns, mapping, notes)
        if isinstance(problem, ImportIssue):
            yield problem
            continue
        extra = {
            key.removeprefix("extra:"): value
            for key, value in values.items()
            if key.startswith("extra:")
        }
        if label and values.get("split", "").casefold() in held_out:
            extra["reference_label"] = classes[label.casefold()]
            label = None
        row = Row(
            line=record.line,
            drug_a=values["drug_a"],
            drug_b=values["drug_b"],
            description=values["description"],
            label=classes[label.casefold()] if label else None,
            external_id_a=values.get("external_id_a", "")[:100],
            external_id_b=values.get("external_id_b", "")[:100],
            split=values.get("split", "")[:20],
            extra=extra,
        )
        if problem is not None:  # the two located mentions
            key = values.get("key", "")
            row = replace(
                row,
                mentions=problem,
                group=values.get("group_by") or values["description"],
                identity=f"{problem[0].as_text()}|{problem[1].as_text()}|{key}",
                # Exact spans (end exclusive) for highlighting on the review page.
                extra={
                    **extra,
                    "spans_a": [list(span) for span in problem[0].spans],
                    "spans_b": [list(span) for span in problem[1].spans],
                },
            )
        yield row


def _locate_mentions(
    line: int, values: dict[str, str], columns: dict[str, str], mapping: ColumnMapping, notes
) -> tuple[Mention, Mention] | ImportIssue:
    """Both mentions of an offset mapping, checked against the sentence, or the first problem."""
    located = []
    for side in ("a", "b"):
        column = columns[f"offsets_{side}"]
        try:
            mention = locate_mention(
                values["description"],
                values[f"offsets_{side}"],
                values[f"drug_{side}"],
                end_inclusive=mapping.offsets_end_inclusive,
                tolerance=mapping.offset_tolerance,
            )
        except OffsetProblem as problem:
            return ImportIssue(line, column, str(problem))
        if mention.shift:
            notes.append(
                f"line {line}: column {column!r}: offsets {values[f'offsets_{side}']} are off by "
                f"{mention.shift:+d} characters; used {mention.as_text()} (end exclusive)"
            )
        located.append(mention)
    return located[0], located[1]


def blinded_by_sentence(items: Iterator[Row | ImportIssue]) -> Iterator[Row | ImportIssue]:
    """Buffer one sentence's rows at a time, then blind each pair with the sentence's mentions."""
    sentence: list[Row] = []
    for item in items:
        if isinstance(item, ImportIssue):
            yield item
            continue
        if sentence and item.group != sentence[0].group:
            yield from _blind_sentence(sentence)
            sentence = []
        sentence.append(item)
    yield from _blind_sentence(sentence)


def _blind_sentence(rows: list[Row]) -> Iterator[Row]:
    everyone = [mention for row in rows for mention in row.mentions]
    for row in rows:
        text = blind_pair(row.description, *row.mentions, everyone)
        yield replace(row, blinded=text)


def _row_problem(
    line: int,
    values: dict[str, str],
    columns: dict[str, str],
    classes: dict[str, str],
    *,
    by_name: bool = True,
) -> ImportIssue | None:
    for key in ("drug_a", "drug_b"):
        if not values[key]:
            return ImportIssue(line, columns[key], "empty drug name")
        if len(values[key]) > 500:
            return ImportIssue(line, columns[key], "drug name longer than 500 characters")
    if not values["description"]:
        return ImportIssue(line, columns["description"], "empty description")
    # Offset mappings check their mentions by offsets instead (_locate_mentions).
    if by_name and not any(mentions(values["description"], values["drug_a"], values["drug_b"])):
        return ImportIssue(
            line,
            columns["description"],
            f"the description names neither {values['drug_a']!r} nor {values['drug_b']!r}",
        )
    label = values.get("label")
    if label and label.casefold() not in classes:
        expected = ", ".join(classes.values())
        return ImportIssue(
            line, columns["label"], f"unknown class {label!r}; expected one of {expected}"
        )
    return None
