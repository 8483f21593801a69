"""manage.py retrain: start a retrain run on the "training" queue (or --inline, here)."""

from annotations.management.commands._jobs import JobCommand
from annotations.services.jobs.starting import start_retrain_run


class Command(JobCommand):
    help = (
        "Start a retrain run (train, then pseudo-label if promoted) and print its id. "
        "--wait follows it with a progress bar "
        "(exit code 1 unless it succeeds); --inline runs it in this process without a worker."
    )

    def start(self, options, project):
        params = self.training_params(options)
        return start_retrain_run(project=project, params=params, enqueue=not options["inline"])
