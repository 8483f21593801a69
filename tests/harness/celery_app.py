"""The Celery app of the test worker processes: the production app plus the faults named by
the FAULT_* environment variables (tests/harness/faults.py). Workers load it with
``celery -A tests.harness.celery_app worker``; prefork children inherit the hooks."""

import os

import django

from ddi_site.celery import app
from tests.harness import faults

django.setup()
_installed = faults.install_from_env(os.environ)
if _installed:
    faults.logger.warning("test faults installed: %s", "; ".join(_installed))

__all__ = ["app"]
