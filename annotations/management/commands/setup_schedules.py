"""manage.py setup_schedules: create the beat PeriodicTasks (watchdog, retrain policies)."""

from django.core.management.base import BaseCommand

from annotations.services.jobs.schedules import setup_default_schedules


class Command(BaseCommand):
    help = (
        "Create or update the periodic tasks beat runs: the watchdog that re-sends lost or "
        "stale runs (every minute) and the retrain-policy check (every 5 minutes). Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--watchdog-every", type=int, default=60, metavar="SECONDS")
        parser.add_argument("--policies-every", type=int, default=300, metavar="SECONDS")

    def handle(self, *args, **options):
        created = setup_default_schedules(
            watchdog_every_s=options["watchdog_every"], policy_every_s=options["policies_every"]
        )
        self.stdout.write(f"periodic tasks ready ({len(created)} new)")
