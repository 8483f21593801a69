"""Helpers of the chaos tests (tests/e2e/test_chaos_*.py): a private broker Redis, waits, figures.

The broker is a redis-server of our own on a loopback port (AOF on, no eviction, as in
RELIABILITY.md's harness), so a test can freeze, shut down, restart or fill it without touching the
shared Redis on 6379. Plain functions and classes; each test module declares its fixtures.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import redis

from annotations.models import Run
from annotations.services.jobs.watchdog import requeue_stale_runs
from tests.harness.processes import free_port

# Size of the chaos loops: short in CI, long through `make chaos` (DDI_CHAOS_LONG=1).
LONG = os.environ.get("DDI_CHAOS_LONG", "") not in ("", "0")


class BrokerRedis:
    """A redis-server process on 127.0.0.1:port with AOF, restartable with the same command."""

    def __init__(self, port: int, folder: Path):
        self.port = port
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.url = f"redis://127.0.0.1:{port}/0"
        self.command = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
            "--save",
            "",
        ]
        self.process: subprocess.Popen | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        try:
            self.client().ping()
        except redis.RedisError:
            pass  # the port is free, as it must be
        else:
            raise AssertionError(f"port {self.port} is taken by another redis-server")
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 (lives as long as the server)
        self.process = subprocess.Popen(
            self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if self.client().ping() and self.process.poll() is None:
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise AssertionError(f"redis-server on {self.port} did not start")

    def shutdown(self) -> None:
        """`redis-cli shutdown`: the AOF is flushed, the process exits."""
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown"], check=False, timeout=20)
        if self.process is not None:
            self.process.wait(timeout=20)

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.thaw()
            self.process.kill()
            self.process.wait(timeout=20)

    def queue_length(self, queue: str) -> int:
        return int(self.client().llen(queue))


def wait_for(condition, *, timeout: float, what: str, every: float = 0.2, watchdog=False):
    """Poll ``condition()`` until truthy (running the watchdog each second, as beat would)."""
    deadline = time.monotonic() + timeout
    last_watchdog = 0.0
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if watchdog and time.monotonic() - last_watchdog > 1.0:
            requeue_stale_runs()
            last_watchdog = time.monotonic()
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def progress_of(run: Run) -> int:
    run.refresh_from_db()
    return run.progress_done


def wait_progress(run: Run, above: int, pool, *, timeout: float = 90, watchdog=True) -> int:
    """Wait until the run's progress passes ``above``; returns the new progress."""
    try:
        return wait_for(
            lambda: (progress_of(run) > above) and run.progress_done,
            timeout=timeout,
            what=f"run {run.pk} progress past {above}",
            watchdog=watchdog,
        )
    except AssertionError as error:
        raise AssertionError(f"{error}: {run.state} {run.error}\n{pool.logs()}") from None


def wait_finished(run: Run, pool, *, timeout: float = 180) -> Run:
    def ended():
        run.refresh_from_db()
        return not run.is_active

    try:
        wait_for(ended, timeout=timeout, what=f"run {run.pk} to end", watchdog=True)
    except AssertionError as error:
        raise AssertionError(f"{error}: {run.state} {run.progress_done}\n{pool.logs()}") from None
    return run


_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): ")


def log_times(log: str, pattern: str) -> list[datetime]:
    """Timestamps of the celery log lines matching a regular expression."""
    found = []
    for line in log.splitlines():
        stamp = _STAMP.match(line)
        if stamp and re.search(pattern, line):
            found.append(datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f"))
    return found


FIGURES = Path(os.environ.get("DDI_CHAOS_FIGURES", "/tmp/ddi-chaos-figures.txt"))


def figure(name: str, value) -> None:
    """Record a measured figure for the README's Reliability section (pytest shows a passing
    test's output only with -s, so the figures also go to DDI_CHAOS_FIGURES)."""
    line = f"{datetime.now():%Y-%m-%d %H:%M:%S} {name} = {value}"
    print(f"RELIABILITY-FIGURE {line}", flush=True)
    with open(FIGURES, "a") as out:
        out.write(line + "\n")


def chaos_pool(tmp: Path, broker: BrokerRedis, settings):
    """A WorkerPool on the private broker; the test process plays beat (short thresholds)."""
    from tests.harness.processes import WorkerPool, worker_env

    settings.DDI_REQUEUE_QUEUED_AFTER_S = 3
    settings.DDI_STALE_AFTER_S = 6
    return WorkerPool(worker_env(tmp, broker.url), tmp)


@contextmanager
def private_broker(folder: Path) -> Iterator[BrokerRedis]:
    """A started BrokerRedis on a free port, stopped (killed) afterwards whatever the test did
    to it. Its own port, folder and data: chaos files run side by side (one per pytest-xdist
    process, each with its own test database)."""
    server = BrokerRedis(free_port(), folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def chaos_workers(
    tmp: Path, broker: BrokerRedis, settings, publisher_options: dict | None = None
) -> Iterator:
    """chaos_pool() with this process publishing to the private broker; stops every worker."""
    from tests.harness.environment import celery_broker

    workers = chaos_pool(tmp, broker, settings)
    try:
        with celery_broker(broker.url, publisher_options or {"visibility_timeout": 30}):
            yield workers
    finally:
        workers.stop_all()
