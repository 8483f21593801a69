"""Fault injection, in test code only: hooks wrapped around the pseudo-label batch loop and the
training progress callback, so the production loops hold no test knob.

In-process tests install a hook with ``monkeypatch.setattr`` as ``patch``; worker processes
started by the chaos/e2e tests load ``tests.harness.celery_app``, which installs the hooks named
by these environment variables (read by nothing but this module):

- ``FAULT_PSEUDOLABEL_DELAY_S``: sleep this long per pseudo-label batch, so a run lasts long
  enough to kill a worker mid-run;
- ``FAULT_PSEUDOLABEL_DELAY_IN_TRANSACTION=1``: take that sleep inside the batch transaction
  (after the chunk lease is locked), so the worker's backend is "idle in transaction" most of the
  time and a chaos test can freeze it;
- ``FAULT_POISON_INTERACTION_ID``: a batch holding this interaction SIGKILLs its own process
  (an OOM-killed worker, every time: a poison message);
- ``FAULT_TRAIN_STEP_DELAY_S``: sleep this long after every recorded training step.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping

logger = logging.getLogger("tests.harness.faults")

Patch = Callable[[object, str, object], None]


def before_each_batch(action: Callable[[list[int]], None], *, patch: Patch = setattr) -> None:
    """Call ``action(ids)`` for every pseudo-label batch read, before it is scored or written."""
    from annotations.services.jobs import pseudolabel

    original = pseudolabel._next_batch

    @functools.wraps(original)
    def next_batch(todo, cursor, batch_size):
        rows = original(todo, cursor, batch_size)
        if rows:
            action([pk for pk, _ in rows])
        return rows

    patch(pseudolabel, "_next_batch", next_batch)


def inside_each_batch_transaction(action: Callable[[], None], *, patch: Patch = setattr) -> None:
    """Call ``action()`` inside each batch transaction, after the chunk lease row is locked."""
    from annotations.services.jobs import pseudolabel

    original = pseudolabel.write_predictions

    @functools.wraps(original)
    def write_predictions(*args, **kwargs):
        action()
        return original(*args, **kwargs)

    patch(pseudolabel, "write_predictions", write_predictions)


def slow_pseudolabel_batches(
    seconds: float, *, in_transaction: bool = False, patch: Patch = setattr
) -> None:
    """Every pseudo-label batch sleeps ``seconds`` (outside or inside its transaction)."""
    if in_transaction:
        inside_each_batch_transaction(lambda: time.sleep(seconds), patch=patch)
    else:
        before_each_batch(lambda ids: time.sleep(seconds), patch=patch)


def poison_interaction(interaction_id: int, *, patch: Patch = setattr) -> None:
    """A batch holding the interaction dies like an OOM-killed process (SIGKILL of itself)."""

    def die(ids: list[int]) -> None:
        if interaction_id in ids:
            logger.error(
                "poison interaction %s in this batch: SIGKILL pid %s", interaction_id, os.getpid()
            )
            os.kill(os.getpid(), signal.SIGKILL)

    before_each_batch(die, patch=patch)


def slow_training_steps(seconds: float, *, patch: Patch = setattr) -> None:
    """Sleep after every training progress callback.

    AFTER the step is recorded, so the delay does not widen the window in which a new checkpoint
    file is on disk but not yet in Run.cursor.
    """
    from annotations.services.jobs.training import _ProgressWriter

    original = _ProgressWriter.__call__

    @functools.wraps(original)
    def call(self, progress):
        original(self, progress)
        time.sleep(seconds)

    patch(_ProgressWriter, "__call__", call)


def install_from_env(environ: Mapping[str, str]) -> list[str]:
    """Install the faults the FAULT_* variables name; returns their names (for the worker log)."""
    installed = []
    delay = float(environ.get("FAULT_PSEUDOLABEL_DELAY_S") or 0)
    if delay:
        in_transaction = environ.get("FAULT_PSEUDOLABEL_DELAY_IN_TRANSACTION", "") in ("1", "true")
        slow_pseudolabel_batches(delay, in_transaction=in_transaction)
        installed.append(f"pseudolabel delay {delay} s (in transaction: {in_transaction})")
    poison = environ.get("FAULT_POISON_INTERACTION_ID")
    if poison:
        poison_interaction(int(poison))
        installed.append(f"poison interaction {poison}")
    step_delay = float(environ.get("FAULT_TRAIN_STEP_DELAY_S") or 0)
    if step_delay:
        slow_training_steps(step_delay)
        installed.append(f"training step delay {step_delay} s")
    return installed
