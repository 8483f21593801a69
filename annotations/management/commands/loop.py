"""manage.py loop: preview a review strategy on the live data, then throw everything away."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotations.exceptions import DomainError
from annotations.management.commands._jobs import project_named
from annotations.models import DEFAULT_PROJECT_NAME
from annotations.simulation import (
    STRATEGIES,
    load_reference_csv,
    preview_loop,
    reference_from_current_labels,
)


class Command(BaseCommand):
    help = (
        "Simulate R rounds of K reviews (pick by strategy, answer from a reference, retrain, "
        "pseudo-label) and print the final-label accuracy after each round. READ-ONLY: it all "
        "happens in a transaction that is rolled back; trained models go to a deleted temp "
        "folder. Reference: --reference FILE.csv (pattern,label per blinded sentence pattern) or, "
        "by default, the project's own current labels (majority class per pattern; items of "
        "patterns nobody labeled are skipped and rows of those patterns are not scored). "
        "Holds row locks while it runs: run it at a quiet time."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", default=DEFAULT_PROJECT_NAME, help="project name")
        parser.add_argument("--rounds", type=int, default=3)
        parser.add_argument("--per-round", type=int, default=20)
        parser.add_argument("--strategy", choices=STRATEGIES, default="default")
        parser.add_argument("--reference", type=Path, help="CSV with columns pattern,label")
        parser.add_argument("--backbone", help="default: settings.DDI_BACKBONE")
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--seed", type=int, default=0, help="seed of the random strategy")

    def handle(self, *args, **options):
        if options["rounds"] < 1 or options["per_round"] < 1:
            raise CommandError("--rounds and --per-round must be at least 1")
        project = project_named(options["project"])
        params = {key: options[key] for key in ("backbone", "epochs") if options[key] is not None}
        try:
            if options["reference"] is not None:
                reference = load_reference_csv(path=options["reference"], project=project)
            else:
                reference = reference_from_current_labels(project=project)
            if not reference.classes_by_pattern:
                raise CommandError(
                    f"the reference ({reference.source}) knows no sentence pattern: label some "
                    "items first or pass --reference FILE.csv"
                )
            self.stdout.write(
                f"Preview of strategy {options['strategy']!r} on {project.name!r}: "
                f"{options['rounds']} rounds x {options['per_round']} reviews; reference: "
                f"{reference.source} ({len(reference.classes_by_pattern)} patterns). "
                "Nothing is kept."
            )
            preview_loop(
                project=project,
                strategy=options["strategy"],
                rounds=options["rounds"],
                per_round=options["per_round"],
                reference=reference,
                params=params,
                seed=options["seed"],
                on_round=self.report,
            )
        except DomainError as error:
            raise CommandError(str(error)) from error
        self.stdout.write("Rolled back: the database is exactly as before.")

    def report(self, result) -> None:
        score = result.score
        line = (
            f"round {result.round}: {result.reviews} reviews ({result.skipped} skipped, no "
            f"reference), accuracy {100 * score.accuracy:.2f}% macro-F1 {score.macro_f1:.4f}, "
            f"{score.wrong} of {score.rows} scored rows wrong"
        )
        if score.not_covered:
            line += f" ({score.not_covered} rows not scored: pattern unknown to the reference)"
        if result.training is not None:
            line += f"; {result.training.decision}"
        self.stdout.write(line)
