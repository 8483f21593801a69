"""manage.py setup_demo: load the bundled demo data and create demo accounts (safe to rerun)."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from annotations.models import DEFAULT_PROJECT_NAME, Project
from annotations.roles import Role, grant_admin_permissions
from annotations.services.importing import ColumnMapping, import_interactions
from annotations.services.jobs.starting import start_retrain_run

DEMO_DIR = Path(settings.BASE_DIR) / "demo"
DEMO_ACCOUNTS = [("admin", Role.ADMIN), ("curator", Role.CURATOR), ("reviewer", Role.REVIEWER)]


class Command(BaseCommand):
    help = "Import demo/interactions.csv and demo/seed_labels.csv; create demo accounts."

    def handle(self, *args, **options):
        project = Project.objects.get(name=DEFAULT_PROJECT_NAME)
        for name, mapping in (
            ("interactions.csv", ColumnMapping()),
            ("seed_labels.csv", ColumnMapping(label="label")),
        ):
            outcome = import_interactions(project=project, path=DEMO_DIR / name, mapping=mapping)
            state = "already loaded" if outcome.already_imported else "loaded"
            self.stdout.write(f"demo/{name}: {state} ({outcome.job.rows_read} rows)")
        credentials = self._accounts()
        # The first model: one retrain run, keyed so a second `make run` never queues another.
        # Forced: 44 seeds from 12 sentence patterns score about 0.45 out of fold (each fold holds
        # whole patterns out), below the promotion floor, yet the model is right on the seeded
        # patterns and its confidence says where it is not; the decision records both.
        run = start_retrain_run(
            project=project,
            params={"force_promote": True},
            idempotency_key=f"demo:first-model:{project.pk}",
        )
        self.stdout.write(f"First model: retrain run #{run.pk} ({run.state}) for the worker.")
        self.stdout.write("Demo accounts (passwords are kept in var/demo_credentials.txt):")
        for line in credentials:
            self.stdout.write(f"  {line}")

    @transaction.atomic
    def _accounts(self) -> list[str]:
        """Create each demo account once with a random password; later runs reuse the file."""
        store = Path(settings.VAR_DIR) / "demo_credentials.txt"
        known = dict(
            line.split(" ", 1)[0].split("=")
            for line in (store.read_text().splitlines() if store.exists() else [])
            if "=" in line
        )
        grant_admin_permissions()  # also after a flush, which drops what the migration granted
        user_model = get_user_model()
        lines = []
        for username, role in DEMO_ACCOUNTS:
            password = known.get(username) or secrets.token_urlsafe(12)
            user, created = user_model.objects.get_or_create(username=username)
            if created or username not in known:
                user.set_password(password)
                user.is_staff = role == Role.ADMIN
                user.save()
            user.groups.add(Group.objects.get(name=role.value))
            lines.append(f"{username}={password} ({role.value})")
        store.write_text("\n".join(lines) + "\n")
        store.chmod(0o600)
        return lines
