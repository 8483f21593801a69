"""Shared parts of `manage.py train|pseudolabel|retrain`: options, starting, following a run."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotations.exceptions import DomainError
from annotations.models import DEFAULT_PROJECT_NAME, Project, Run
from annotations.services.jobs.inline import run_job_inline
from annotations.services.jobs.lifecycle import RetryLater
from annotations.services.jobs.params import RUN_PARAMS, get_train_defaults
from annotations.services.jobs.workers import describe_missing_consumer

POLL_S = 0.5
# The run parameters `manage.py train|retrain` take as options, in RUN_PARAMS order.
CLI_PARAMS = tuple(param for param in RUN_PARAMS if param.cli_help)
WORKER_CHECK_S = 10.0


def project_named(name: str) -> Project:
    """The project called `name`, or a CommandError that lists the projects there are."""
    project = Project.objects.filter(name=name).first()
    if project is None:
        names = ", ".join(Project.objects.values_list("name", flat=True)[:20]) or "none"
        raise CommandError(f"No project named {name!r}. Projects: {names}")
    return project


class JobCommand(BaseCommand):
    """Start a job through the services, print its run id, optionally follow it to its end."""

    training_options = True

    def add_arguments(self, parser):
        parser.add_argument("--project", default=DEFAULT_PROJECT_NAME, help="project name")
        parser.add_argument(
            "--wait", action="store_true", help="follow the run with a progress bar until it ends"
        )
        parser.add_argument(
            "--inline",
            action="store_true",
            help="run the job in this process (no worker needed; same code as the worker)",
        )
        if self.training_options:
            defaults = get_train_defaults()
            for param in CLI_PARAMS:
                help_text = param.cli_help.format(default=defaults.get(param.name))
                if param.kind is bool:
                    parser.add_argument(param.option, action="store_true", help=help_text)
                else:
                    parser.add_argument(
                        param.option, type=param.kind, metavar=param.cli_metavar, help=help_text
                    )

    def training_params(self, options) -> dict:
        """The given options as run params (a yes/no option only when given)."""
        params = {}
        for param in CLI_PARAMS:
            value = options[param.name]
            if value is not None and value is not False:
                params[param.name] = value
        return params

    def get_project(self, name: str) -> Project:
        return project_named(name)

    def start(self, options, project: Project) -> Run:
        raise NotImplementedError

    def handle(self, *args, **options):
        project = self.get_project(options["project"])
        try:
            run = self.start(options, project)
        except DomainError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"run {run.pk} ({run.kind}) {run.state}")
        if options["inline"]:
            try:
                run = run_job_inline(run_id=run.pk)
            except RetryLater as busy:
                raise CommandError(f"{busy}; run {run.pk} stays queued for a worker") from busy
        elif options["wait"]:
            run = follow(run, self.stdout)
        if options["inline"] or options["wait"]:
            self.report(run)

    def report(self, run: Run) -> None:
        run.refresh_from_db()
        self.stdout.write(f"run {run.pk} {run.state}: {run.stage}")
        if run.result:
            self.stdout.write(f"result: {run.result}")
        if run.state != Run.State.SUCCEEDED:
            raise CommandError(run.error or f"run {run.pk} ended {run.state}")


def follow(run: Run, stream, *, worker_check_every_s: float = WORKER_CHECK_S) -> Run:
    """Poll the Run row (and a retrain's child) with a tqdm bar until it ends.

    While the run is queued, asks the workers every few seconds whether one consumes its queue
    and, when none does, says so once with the command that would start one.
    """
    bar = tqdm(total=0, unit="step", file=stream, dynamic_ncols=True)
    next_check, warned = 0.0, ""
    try:
        while True:
            if run.state == Run.State.QUEUED and time.monotonic() >= next_check:
                next_check = time.monotonic() + worker_check_every_s
                warning = describe_missing_consumer(run=run, use_cache=False)
                if warning and warning != warned:
                    bar.write(warning, file=stream)
                warned = warning
            run.refresh_from_db()
            child = run.children.order_by("-pk").first()
            shown = child if child is not None and run.is_active else run
            bar.total = max(shown.progress_total, 1)
            bar.n = shown.progress_done
            bar.set_description(f"run {shown.pk} {shown.stage or shown.state}"[:60])
            bar.refresh()
            if not run.is_active:
                return run
            time.sleep(POLL_S)
    finally:
        bar.close()
