"""manage.py export --project NAME --format csv|jsonl|parquet --out FILE [filters]

Streams the project's final labels into FILE (flat memory, any size) and writes the dataset
card beside it (FILE.card.md, FILE.card.json). Same data and filters -> same bytes.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotations.exceptions import DomainError
from annotations.final_label_order import SOURCES
from annotations.management.commands._jobs import project_named
from annotations.models import Interaction
from annotations.services.export import FORMATS, filters_from_query, write_export


def _csv_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Command(BaseCommand):
    help = "Export final labels (review > seed > rule > model) with provenance and a dataset card."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project name")
        parser.add_argument("--format", required=True, choices=FORMATS, dest="export_format")
        parser.add_argument("--out", required=True, type=Path, help="output file")
        parser.add_argument(
            "--min-confidence",
            type=float,
            default=None,
            help="drop model-sourced rows below this confidence",
        )
        parser.add_argument(
            "--sources",
            type=_csv_list,
            default=None,
            help=f"comma-separated subset of: {','.join(SOURCES)}",
        )
        parser.add_argument("--reviewed-only", action="store_true")
        parser.add_argument(
            "--auto-accepted",
            action="store_true",
            help="model-labeled rows only where the latest audit certifies the project's alpha",
        )
        parser.add_argument(
            "--classes", type=_csv_list, default=None, help="comma-separated class names to keep"
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        project = project_named(options["project"])
        out: Path = options["out"]
        if not out.parent.exists():
            raise CommandError(f"The folder {out.parent} does not exist.")
        total = Interaction.objects.filter(project=project).count()
        bar = tqdm(total=total, unit="row", disable=options["no_progress"], file=self.stderr._out)

        def on_progress(scanned: int) -> None:
            bar.update(scanned - bar.n)

        try:
            filters = filters_from_query(project=project, query=options)
            result = write_export(
                project=project,
                export_format=options["export_format"],
                filters=filters,
                out=out,
                on_progress=on_progress,
            )
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        sources = ", ".join(f"{k} {v}" for k, v in result.stats.by_source.items())
        self.stdout.write(
            f"Wrote {result.stats.rows} rows to {result.path} ({sources}); "
            f"card: {result.card_markdown_path}, {result.card_json_path}"
        )
