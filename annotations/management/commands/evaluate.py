"""manage.py evaluate --project NAME [--split test] [--model-version N] [--positive-classes a,b]"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from annotations.exceptions import DomainError
from annotations.management.commands._jobs import project_named
from annotations.models import DEFAULT_PROJECT_NAME, ModelVersion
from annotations.services.evaluation import evaluate_model_version


class Command(BaseCommand):
    help = (
        "Score a model version's predictions on a split against its reference labels and print "
        "JSON: micro precision/recall/F1 over the positive classes (DDI-2013 shared-task "
        "scoring; default: every class but 'negative'), per-class scores, accuracy, confusion "
        "matrix. Pseudo-label the split first (manage.py pseudolabel)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", default=DEFAULT_PROJECT_NAME)
        parser.add_argument("--split", default="test", help="'' or 'all' for every interaction")
        parser.add_argument("--model-version", type=int, help="version number (default: active)")
        parser.add_argument(
            "--positive-classes", help="comma-separated (default: all but a 'negative' class)"
        )

    def handle(self, *args, **options):
        project = project_named(options["project"])
        version = None
        if options["model_version"] is not None:
            version = ModelVersion.objects.filter(
                project=project, number=options["model_version"]
            ).first()
            if version is None:
                raise CommandError(
                    f"{project.name!r} has no model version {options['model_version']}"
                )
        positives = None
        if options["positive_classes"]:
            positives = [c.strip() for c in options["positive_classes"].split(",") if c.strip()]
        split = options["split"] if options["split"] not in ("", "all") else None
        try:
            scores = evaluate_model_version(
                project=project, split=split, model_version=version, positive_classes=positives
            )
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(scores, indent=2))
