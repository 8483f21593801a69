"""manage.py train: start a train run on the "training" queue (or --inline, here)."""

from annotations.management.commands._jobs import JobCommand
from annotations.models import Run
from annotations.services.jobs.starting import start_run


class Command(JobCommand):
    help = (
        "Start a train run of a project and print its id. --wait follows it with a progress bar "
        "(exit code 1 unless it succeeds); --inline runs it in this process without a worker."
    )

    def start(self, options, project):
        params = self.training_params(options)
        return start_run(Run.Kind.TRAIN, params, project=project, enqueue=not options["inline"])
