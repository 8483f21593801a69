"""Is any running Celery worker consuming a run's queue? (Celery's remote control: inspect.)

`celery -A ddi_site worker`, as Celery's own docs write it, consumes only the `default` queue;
training waits on `training` and pseudo-labeling on `inference`, so such a worker never picks
a run up and the run sits at "queued 0 %". The Runs page and `manage.py train --wait` ask the
workers which queues they consume and say so, with the command that would.
"""

from __future__ import annotations

import logging

from django.core.cache import cache

from annotations.models import Run

logger = logging.getLogger(__name__)

QUEUE_OF_KIND = {
    Run.Kind.TRAIN: "training",
    Run.Kind.RETRAIN: "training",
    Run.Kind.PSEUDOLABEL: "inference",
}
WORKER_COMMAND = "celery -A ddi_site worker -Q default,training,inference -c 1 -l INFO"
_CACHE_KEY = "ddi:worker-queues"
_CACHE_S = 10  # the Runs page polls every second; one broadcast per 10 s is plenty


def list_consumed_queues(*, timeout: float = 1.0, use_cache: bool = True) -> dict[str, set[str]]:
    """{worker name: queue names} of the workers that answered within ``timeout`` seconds.

    An unreachable broker counts as "no workers" (logged). Cached for a few seconds.
    """
    if use_cache:
        cached = cache.get(_CACHE_KEY)
        if cached is not None:
            return cached
    from ddi_site.celery import app

    try:
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception as error:  # kombu/redis/socket errors differ by transport
        logger.warning("could not ask the workers for their queues: %s", error)
        replies = {}
    consumed = {name: {q["name"] for q in queues or []} for name, queues in replies.items()}
    cache.set(_CACHE_KEY, consumed, _CACHE_S)
    return consumed


def describe_missing_consumer(*, run: Run, use_cache: bool = True) -> str:
    """A sentence for a queued run that no running worker would take; "" when one would."""
    if run.state != Run.State.QUEUED:
        return ""
    queue = QUEUE_OF_KIND[run.kind]
    consumed = list_consumed_queues(use_cache=use_cache)
    if any(queue in queues for queues in consumed.values()):
        return ""
    if consumed:
        others = ", ".join(sorted(set().union(*consumed.values())))
        seen = f"the running workers consume only: {others}"
    else:
        seen = "no worker answered"
    return (
        f"No running worker consumes the '{queue}' queue ({seen}); run {run.pk} waits until "
        f"one does. Start one with: {WORKER_COMMAND}"
    )
