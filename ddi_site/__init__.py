"""Django project for ddi-curate. Importing the Celery app here makes `@shared_task` bind to it."""

from ddi_site.celery import app as celery_app

__all__ = ["celery_app"]
