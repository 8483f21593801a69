"""manage.py retrain: start a retrain run on the "training" queue (or --inline, here)."""

from annotations.management.commands._jobs import JobCommand
from annotations.models import Run
from annotations.services.jobs.starting import start_run


class Command(JobCommand):
    help = (
        "Start a retrain run (train, then pseudo-label if promoted) and print its id. "
        "--wait follows it with a progress bar "
        "(exit code 1 unless it succeeds); --inline runs it in this process without a worker."
    )

    def start(self, options, project):
        params = self.training_params(options)
        return start_run(Run.Kind.RETRAIN, params, project=project, enqueue=not options["inline"])
