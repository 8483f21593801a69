"""manage.py import_interactions FILE [--project NAME] [--label-column label] [--format ddi2013]"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotations.exceptions import ImportFormatError
from annotations.models import DEFAULT_PROJECT_NAME, Label, Project
from annotations.services.import_formats import FORMATS
from annotations.services.importing import MAX_REPORTED_ISSUES, ColumnMapping, import_interactions


class Command(BaseCommand):
    help = (
        "Import interactions from a CSV, TSV or JSONL file (all-or-nothing; re-importing adds "
        "nothing). Columns: 'Drug 1', 'Drug 2', 'Interaction Description' (+ an optional label "
        "column), or a known corpus layout with --format (ddi2013: the DDI Extraction 2013 pairs, "
        "blinded by offsets, test labels kept aside for `manage.py evaluate`)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--project", default=DEFAULT_PROJECT_NAME)
        parser.add_argument("--label-column", default=None, help="column holding seed labels")
        parser.add_argument(
            "--label-source",
            choices=[Label.Source.SEED, Label.Source.IMPORT],
            default=Label.Source.SEED,
        )
        parser.add_argument("--drug-a-column", default=None, help="default: 'Drug 1'")
        parser.add_argument("--drug-b-column", default=None, help="default: 'Drug 2'")
        parser.add_argument(
            "--description-column", default=None, help="default: 'Interaction Description'"
        )
        parser.add_argument(
            "--format",
            choices=sorted(FORMATS),
            default=None,
            help="a named column mapping; its classes are used by --create-project",
        )
        parser.add_argument("--create-project", action="store_true", help="create it if missing")
        parser.add_argument(
            "--classes", default=None, help="comma-separated classes for --create-project"
        )

    def handle(self, *args, **options):
        base, classes = FORMATS.get(options["format"], (ColumnMapping(), None))
        project = self._project(options, classes)
        overrides = {
            field: options[option]
            for field, option in (
                ("drug_a", "drug_a_column"),
                ("drug_b", "drug_b_column"),
                ("description", "description_column"),
                ("label", "label_column"),
            )
            if options[option] is not None
        }
        mapping = dataclasses.replace(base, **overrides)
        path: Path = options["file"]
        total = path.stat().st_size if path.is_file() else 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=path.name, disable=None) as bar:

            def progress(rows: int, done: int, _total: int) -> None:
                bar.update(done - bar.n)
                bar.set_postfix(rows=rows)

            try:
                outcome = import_interactions(
                    project=project,
                    path=path,
                    mapping=mapping,
                    label_source=options["label_source"],
                    on_progress=progress,
                )
            except ImportFormatError as exc:
                raise CommandError(str(exc)) from None
        job = outcome.job
        if outcome.already_imported:
            self.stdout.write(f"{path.name} was already imported (#{job.pk}); nothing added.")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {path.name} into {project.name!r}: {job.rows_read} rows read, "
                f"{job.interactions_created} new interactions, {job.labels_created} new labels."
            )
        )
        for note in outcome.notes[:MAX_REPORTED_ISSUES]:
            self.stdout.write(f"note: {note}")
        if len(outcome.notes) > MAX_REPORTED_ISSUES:
            self.stdout.write(f"... and {len(outcome.notes) - MAX_REPORTED_ISSUES} more notes")

    def _project(self, options, format_classes: list[str] | None) -> Project:
        name = options["project"]
        project = Project.objects.filter(name=name).first()
        if project is not None:
            return project
        if not options["create_project"]:
            raise CommandError(f"no project named {name!r}; add --create-project to create it")
        classes = [c.strip() for c in (options["classes"] or "").split(",") if c.strip()]
        if options["classes"] is not None and len(set(classes)) < 2:
            raise CommandError("--classes needs at least two distinct class names")
        classes = classes or list(format_classes or [])
        return Project.objects.create(name=name, **({"label_classes": classes} if classes else {}))
