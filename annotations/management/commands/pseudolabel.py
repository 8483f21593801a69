"""manage.py pseudolabel: predict every interaction lacking a prediction from a model version."""

from django.core.management.base import CommandError

from annotations.management.commands._jobs import JobCommand
from annotations.models import ModelVersion, Run
from annotations.services.jobs.starting import start_run


class Command(JobCommand):
    help = (
        "Start a pseudo-labeling run (default: the active model version) and print its id. "
        "--wait follows it (exit code 1 unless it succeeds); --inline runs it without a worker."
    )
    training_options = False

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--model-version", type=int, metavar="NUMBER", help="default: active")

    def start(self, options, project):
        version = None
        if options["model_version"] is not None:
            version = ModelVersion.objects.filter(
                project=project, number=options["model_version"]
            ).first()
            if version is None:
                raise CommandError(
                    f"{project.name!r} has no model version {options['model_version']}"
                )
        return start_run(
            Run.Kind.PSEUDOLABEL,
            project=project,
            model_version=version,
            enqueue=not options["inline"],
        )
