"""Publishing the task messages of runs and chunks, by task name.

Messages go out by name (``send_task``) so that no service imports annotations.tasks: the tasks
import the services, never the other way round (no import circle). Routing is by name too
(CELERY_TASK_ROUTES), and a worker applies the registered task's own options (time limits,
acks_late) to the message, exactly as for ``task.apply_async``.
"""

from __future__ import annotations

import logging

from celery import current_app

from annotations.models import Run

logger = logging.getLogger(__name__)

# The names annotations/tasks.py registers (tests/test_architecture.py checks them).
RUN_TASKS = {
    Run.Kind.TRAIN: "annotations.train_model",
    Run.Kind.RETRAIN: "annotations.retrain",
    Run.Kind.PSEUDOLABEL: "annotations.pseudolabel_run",
}
CHUNK_TASK = "annotations.pseudolabel_chunk"


def send_run(run_id: int) -> bool:
    """Publish the task message of a run; on a broker error log it and leave the run queued.

    The watchdog (annotations.requeue_stale_runs) re-sends queued runs, so a broker outage
    delays a run but never loses it. Returns whether the message was published.
    """
    run = Run.objects.filter(pk=run_id).only("kind").first()
    if run is None:
        logger.warning("run %s vanished before it could be sent", run_id)
        return False
    return _publish(RUN_TASKS[run.kind], run_id, what=f"run {run_id} ({run.kind})")


def send_chunk(chunk_id: int) -> bool:
    """Publish one chunk task; on a broker error log it (the watchdog re-sends it later)."""
    return _publish(CHUNK_TASK, chunk_id, what=f"chunk {chunk_id}")


def _publish(task_name: str, object_id: int, *, what: str) -> bool:
    try:
        current_app.send_task(
            task_name, args=[object_id], retry=True, retry_policy={"max_retries": 2}
        )
    except Exception as error:  # kombu/redis raise many types; none may lose the Run row
        logger.error("broker unavailable, %s stays queued for the watchdog: %s", what, error)
        return False
    return True
