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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from annotations.exceptions import ImportFormatError, ImportIssue
from annotations.models import ImportJob, Interaction, Label, Project
from annotations.rule_matches import match_imported_interactions
from annotations.services import parsing
from annotations.services.importing.columns import (
    ColumnMapping,
    column_alias_notes,
    resolve_columns,
)
from annotations.services.importing.rows import blinded_by_sentence, validated_rows
from annotations.services.importing.writer import BatchWriter

logger = logging.getLogger(__name__)

MAX_REPORTED_ISSUES = 20
ProgressCallback = Callable[[int, int, int], None]  # (rows_read, bytes_read, bytes_total)


@dataclass
class ImportOutcome:
    """What an import did; `job` is the ImportJob row (new or the earlier identical one)."""

    job: ImportJob
    already_imported: bool = False
    # Rows imported with a remark (unlabeled, corrected offsets): "line N: what was done".
    notes: list[str] = field(default_factory=list)


def file_sha256(path: Path) -> str:
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
    sha256 = file_sha256(path)
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
        writer = BatchWriter(job=job, label_source=label_source, user=user)
        issues: list[ImportIssue] = []
        notes: list[str] = column_alias_notes(columns, mapping)
        rows_read = 0
        checked = validated_rows(rows, columns, job.project, mapping, notes)
        if mapping.uses_offsets:
            checked = blinded_by_sentence(checked)
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
