"""Import interactions (and optional seed labels) from CSV, TSV or JSONL files.

Policy (documented in the README): an import is all-or-nothing. Every row is validated; if any
row is bad, the import is aborted with a report of up to MAX_REPORTED_ISSUES problems (line,
column, what was expected) and no row of the file stays in the database. Re-importing a file
already imported (same sha256) is a no-op; a row whose text already exists in the project is
skipped, so overlapping files add only what is new.

Offset mappings (DDI-2013 and the like, see services/import_formats.py) locate the two mentions by
character offsets instead of by name, blind the other mentions of the same sentence as DRUG_OTHER
(one sentence's rows are buffered at a time, so the file must keep a sentence's rows together),
and put the offsets and a row key into the content hash so distinct pairs never collapse.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from difflib import get_close_matches
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, reset_queries, transaction
from django.utils import timezone

from annotations.exceptions import ImportFormatError, ImportIssue
from annotations.models import ImportJob, Interaction, Label, LabelEvent, Project
from annotations.rule_matches import match_imported_interactions
from annotations.services import parsing
from annotations.services.ml import (
    Mention,
    OffsetProblem,
    blind,
    blind_pair,
    locate_mention,
    mentions,
)

logger = logging.getLogger(__name__)

MAX_REPORTED_ISSUES = 20
MAX_LISTED_COLUMNS = 30
ProgressCallback = Callable[[int, int, int], None]  # (rows_read, bytes_read, bytes_total)


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


@dataclass
class ImportOutcome:
    """What an import did; `job` is the ImportJob row (new or the earlier identical one)."""

    job: ImportJob
    already_imported: bool = False
    # Rows imported with a remark (unlabeled, corrected offsets): "line N: what was done".
    notes: list[str] = field(default_factory=list)


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "", name.strip().lower())


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


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_interactions(
    *,
    project: Project,
    path: Path,
    mapping: ColumnMapping | None = None,
    label_source: str = Label.Source.SEED,
    user=None,
    on_progress: ProgressCallback | None = None,
) -> ImportOutcome:
    """Import a file into `project`, all-or-nothing. Safe to run twice (the second adds nothing).

    Side effects: creates Interaction rows, Label rows (+ LabelEvent history) for a label column,
    and one ImportJob row. Raises ImportFormatError (nothing written but a failed ImportJob).
    """
    mapping = mapping or ColumnMapping()
    path = Path(path)
    file_name = path.name
    if not path.is_file():
        raise ImportFormatError(file_name, [ImportIssue(None, None, f"no such file: {path}")])
    sha256 = _file_sha256(path)
    earlier = ImportJob.objects.filter(
        project=project, sha256=sha256, state=ImportJob.State.SUCCEEDED
    ).first()
    if earlier is not None:
        return ImportOutcome(job=earlier, already_imported=True)

    # An earlier import of this file that died (process killed, database connection lost) left
    # its job "running" for ever, and its rows were rolled back: say so before starting again.
    ImportJob.objects.filter(project=project, sha256=sha256, state=ImportJob.State.RUNNING).update(
        state=ImportJob.State.FAILED,
        errors=["interrupted: the import stopped before it finished; nothing was kept"],
        finished_at=timezone.now(),
    )
    job = ImportJob.objects.create(
        project=project, file_name=file_name, sha256=sha256, file_format="?", created_by=user
    )
    try:
        with transaction.atomic():
            notes = _import_rows(
                job=job,
                path=path,
                mapping=mapping,
                label_source=label_source,
                user=user,
                on_progress=on_progress,
            )
    except ImportFormatError as exc:
        ImportJob.objects.filter(pk=job.pk).update(
            state=ImportJob.State.FAILED,
            errors=[str(issue) for issue in exc.issues],
            interactions_created=0,
            labels_created=0,
            finished_at=timezone.now(),
        )
        raise
    except Exception as exc:
        _mark_interrupted(job.pk, exc)
        raise
    job.refresh_from_db()
    return ImportOutcome(job=job, notes=notes)


def _mark_interrupted(job_id: int, error: Exception) -> None:
    """Best effort: a job whose import died of an unexpected error ends failed, not running.

    The job row was committed before the import's transaction, which has rolled back by now. The
    error may be a lost database connection: drop a dead connection so the update opens a fresh
    one (outside an enclosing transaction only). If even that fails, the next import of the same
    file marks the job interrupted.
    """
    try:
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
        ImportJob.objects.filter(pk=job_id, state=ImportJob.State.RUNNING).update(
            state=ImportJob.State.FAILED,
            errors=[f"interrupted: {type(error).__name__}: {error}"[:2000]],
            interactions_created=0,
            labels_created=0,
            finished_at=timezone.now(),
        )
    except DatabaseError:
        logger.warning("import job %s: could not mark it failed after %r", job_id, error)


def _import_rows(
    *, job: ImportJob, path: Path, mapping: ColumnMapping, label_source: str, user, on_progress
) -> list[str]:
    file_name = path.name
    total_bytes = path.stat().st_size
    with path.open("rb") as raw:
        head = raw.read(8192)
        encoding = parsing.check_not_binary(file_name, head)
        file_format = parsing.detect_format(path, head)
        raw.seek(0)
        max_field = settings.DDI_MAX_FIELD_BYTES
        lines = parsing.LineReader(
            raw, file_name=file_name, encoding=encoding, max_line_chars=4 * max_field
        )
        if file_format == "jsonl":
            header, rows = parsing.read_jsonl(lines, file_name=file_name, max_field_chars=max_field)
            delimiter = None
        else:
            delimiter = "\t" if file_format == "tsv" else ","
            header, rows = parsing.read_delimited(
                lines, file_name=file_name, delimiter=delimiter, max_field_chars=max_field
            )
        columns = resolve_columns(header, mapping, file_name=file_name, delimiter=delimiter)
        writer = _BatchWriter(job=job, label_source=label_source, user=user)
        issues: list[ImportIssue] = []
        notes: list[str] = column_alias_notes(columns, mapping)
        rows_read = 0
        checked = _validated(rows, columns, job.project, mapping, notes)
        if mapping.uses_offsets:
            checked = _blinded_by_sentence(checked)
        for item in checked:
            if isinstance(item, ImportIssue):
                issues.append(item)
                if len(issues) >= MAX_REPORTED_ISSUES:
                    break
                continue
            rows_read += 1
            if not issues:  # after the first problem, only validate: nothing will be kept
                writer.add(item)
            if on_progress and rows_read % 1000 == 0:
                on_progress(rows_read, raw.tell(), total_bytes)
        if issues:
            raise ImportFormatError(file_name, issues)
        if rows_read == 0:
            raise ImportFormatError(
                file_name, [ImportIssue(None, None, "the file has a header but no data rows")]
            )
        writer.flush()
        # The active rules' matches of the new rows, stored in the import's transaction: exports
        # and the queue read them and never rescan (issue 18).
        match_imported_interactions(job=job)
        if on_progress:
            on_progress(rows_read, total_bytes, total_bytes)
    ImportJob.objects.filter(pk=job.pk).update(
        state=ImportJob.State.SUCCEEDED,
        file_format=file_format,
        rows_read=rows_read,
        interactions_created=Interaction.objects.filter(import_job=job).count(),
        labels_created=writer.labels_created,
        finished_at=timezone.now(),
    )
    if notes:
        logger.info("%s: %d rows imported with a note, e.g. %s", file_name, len(notes), notes[0])
    return notes


@dataclass(frozen=True)
class _Row:
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


def _validated(
    rows: Iterator,
    columns: dict[str, str],
    project: Project,
    mapping: ColumnMapping,
    notes: list[str],
) -> Iterator[_Row | ImportIssue]:
    """Check each record; yield a clean _Row or one ImportIssue per problem.

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
        row = _Row(
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


def _blinded_by_sentence(items: Iterator[_Row | ImportIssue]) -> Iterator[_Row | ImportIssue]:
    """Buffer one sentence's rows at a time, then blind each pair with the sentence's mentions."""
    sentence: list[_Row] = []
    for item in items:
        if isinstance(item, ImportIssue):
            yield item
            continue
        if sentence and item.group != sentence[0].group:
            yield from _blind_sentence(sentence)
            sentence = []
        sentence.append(item)
    yield from _blind_sentence(sentence)


def _blind_sentence(rows: list[_Row]) -> Iterator[_Row]:
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


class _BatchWriter:
    """Buffers rows and writes them with bulk inserts that skip rows already present."""

    def __init__(self, *, job: ImportJob, label_source: str, user):
        self.job = job
        self.label_source = label_source
        self.user = user
        self.batch_size = settings.DDI_IMPORT_BATCH_SIZE
        self.buffer: list[_Row] = []
        self.labels_created = 0

    def add(self, row: _Row) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        project = self.job.project
        objects = []
        for row in self.buffer:
            blinded = row.blinded or blind(row.description, row.drug_a, row.drug_b)
            objects.append(
                Interaction(
                    project=project,
                    drug_a=row.drug_a,
                    drug_b=row.drug_b,
                    description=row.description,
                    blinded_text=blinded,
                    pattern_hash=pattern_hash(blinded),
                    content_hash=content_hash(
                        row.drug_a, row.drug_b, row.description, row.identity
                    ),
                    source_file=self.job.file_name,
                    source_line=row.line,
                    external_id_a=row.external_id_a,
                    external_id_b=row.external_id_b,
                    split=row.split,
                    extra=row.extra,
                    import_job=self.job,
                )
            )
        Interaction.objects.bulk_create(objects, ignore_conflicts=True)
        # With DEBUG on, Django keeps the SQL of every query; a batch insert is megabytes of SQL,
        # so without this the importer's memory would grow with the file.
        reset_queries()
        labeled = {
            obj.content_hash: row.label
            for obj, row in zip(objects, self.buffer, strict=True)
            if row.label
        }
        if labeled:
            self._write_labels(labeled)
        self.buffer = []

    def _write_labels(self, labeled: dict[str, str]) -> None:
        """Label rows that have none yet; an existing label (e.g. a review) is never overwritten."""
        ids = dict(
            Interaction.objects.filter(
                project=self.job.project, content_hash__in=list(labeled)
            ).values_list("content_hash", "id")
        )
        taken = set(
            Label.objects.filter(interaction_id__in=ids.values()).values_list(
                "interaction_id", flat=True
            )
        )
        new = [(ids[h], cls) for h, cls in labeled.items() if ids[h] not in taken]
        Label.objects.bulk_create(
            [
                Label(interaction_id=i, label_class=cls, source=self.label_source, author=self.user)
                for i, cls in new
            ]
        )
        LabelEvent.objects.bulk_create(
            [
                LabelEvent(
                    interaction_id=i,
                    actor=self.user,
                    action=LabelEvent.Action.CREATE,
                    source=self.label_source,
                    new_class=cls,
                    new_status=Label.Status.LABELED,
                    note=f"imported from {self.job.file_name}",
                    version=1,
                )
                for i, cls in new
            ]
        )
        self.labels_created += len(new)
