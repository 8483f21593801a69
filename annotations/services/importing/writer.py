"""Writing the checked rows in batches: interactions, seed labels and their history."""

from __future__ import annotations

from django.conf import settings
from django.db import reset_queries

from annotations.models import ImportJob, Interaction, Label, LabelEvent
from annotations.services.importing.rows import Row, content_hash, pattern_hash
from annotations.services.ml import (
    blind,
)


class BatchWriter:
    """Buffers rows and writes them with bulk inserts that skip rows already present."""

    def __init__(self, *, job: ImportJob, label_source: str, user):
        self.job = job
        self.label_source = label_source
        self.user = user
        self.batch_size = settings.DDI_IMPORT_BATCH_SIZE
        self.buffer: list[Row] = []
        self.labels_created = 0

    def add(self, row: Row) -> None:
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
