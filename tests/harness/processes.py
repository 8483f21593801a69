"""Processes the tests start: Celery worker subprocesses (Worker, WorkerPool, worker_env) and
gunicorn (LiveServer) against the test database, each in its own session (setsid) so a test can
SIGKILL one pool child or the whole process group, like the OOM killer or a power loss."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings as django_settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = 2  # the workers engineer's Redis database (CI may set E2E_REDIS_URL)
REDIS_URL = os.environ.get("E2E_REDIS_URL", f"redis://127.0.0.1:6379/{REDIS_DB}")
WORKER_DB_APP_NAME = "ddi-e2e-worker"


def stop_session(process: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the process's session (it was started with start_new_session), then SIGKILL it
    if it has not exited after ``grace_s`` seconds."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


class Worker:
    """One `celery worker` process group; its log file is kept for failure messages."""

    def __init__(self, name: str, env: dict, log: Path, queues: str, pool: str):
        self.name = name
        self.log = log
        command = [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            # The production app plus the FAULT_* hooks the test asks for (tests/harness/).
            "tests.harness.celery_app",
            "worker",
            "-Q",
            queues,
            "-c",
            "1",
            "--pool",
            pool,
            "--prefetch-multiplier",
            "1",
            "-n",
            f"{name}@%h",
            "-l",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"worker {self.name} did not start:\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def child_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        return [int(pid) for pid in out.stdout.split()]

    def kill_child(self) -> None:
        """SIGKILL the pool process (OOM killer); the main process forks a new one."""
        for pid in self.child_pids():
            os.kill(pid, signal.SIGKILL)

    def kill_group(self) -> None:
        """SIGKILL the whole worker (power loss)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        stop_session(self.process, grace_s=15)


class WorkerPool:
    """Starts workers for one test and stops every one of them afterwards."""

    def __init__(self, base_env: dict, tmp: Path):
        self.base_env = base_env
        self.tmp = tmp
        self.workers: list[Worker] = []

    def start(
        self,
        name: str = "w1",
        *,
        queues: str = "default,training,inference",
        pool: str = "prefork",
        wait: bool = True,
        **env: str,
    ) -> Worker:
        worker = Worker(
            name,
            {**self.base_env, **env},
            self.tmp / f"{name}.log",
            queues,
            pool,
        )
        self.workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    def full_logs(self) -> str:
        return "\n".join(w.log.read_text(errors="replace") for w in self.workers)

    def logs(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.tail(2500)}" for w in self.workers)

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()


def worker_env(tmp: Path, broker_url: str) -> dict:
    """Environment of a worker process: the test database, the broker, short leases."""
    db = django_settings.DATABASES["default"]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DDI_", "CELERY_", "DATABASE_", "PYTEST", "DB_"))
    }
    env.update(
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@127.0.0.1:5432/{db['NAME']}",
        CELERY_BROKER_URL=broker_url,
        CELERY_VISIBILITY_TIMEOUT="30",
        DB_APPLICATION_NAME=WORKER_DB_APP_NAME,
        DDI_VAR_DIR=str(tmp / "var"),
        DDI_BACKBONE="tiny-random-bert",
        DDI_PSEUDOLABEL_CHUNK_SIZE="100",
        DDI_PSEUDOLABEL_BATCH_SIZE="20",
        FAULT_PSEUDOLABEL_DELAY_S="0.1",
        DDI_CHUNK_LEASE_S="3",
        DDI_MAX_ATTEMPTS="10",
        DDI_ARTIFACTS_DIR=str(tmp / "models"),
        PYTHONUNBUFFERED="1",
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The (test) database this process uses, as a DATABASE_URL for a server subprocess."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("postgresql"):
        user = db.get("USER") or "postgres"
        return f"postgres://{user}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    raise RuntimeError("live-server tests run on PostgreSQL (mark them `postgres`)")


class LiveServer:
    """gunicorn serving the app on 127.0.0.1 against the test database, in its own session."""

    def __init__(self, tmp: Path, *, workers: int = 2, threads: int = 4, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "gunicorn.log"
        base = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DDI_TEST", "PYTEST", "DATABASE_", "CELERY_"))
        }
        base.update(
            DATABASE_URL=database_url(),
            DDI_VAR_DIR=str(tmp / "var"),
            DB_APPLICATION_NAME="ddi-reliability-web",
            CELERY_BROKER_URL=env.pop("CELERY_BROKER_URL", "filesystem://"),
            DEBUG="false",
            PYTHONUNBUFFERED="1",
            **env,
        )
        command = [
            str(Path(sys.executable).parent / "gunicorn"),
            "ddi_site.wsgi",
            "-b",
            f"127.0.0.1:{self.port}",
            "-w",
            str(workers),
            "--threads",
            str(threads),
            "--timeout",
            "120",
            "--access-logfile",
            "-",
        ]
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=base,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                requests.get(f"{self.url}/accounts/login/", timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise AssertionError(f"gunicorn did not start:\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def worker_pids(self) -> list[int]:
        import psutil

        return [child.pid for child in psutil.Process(self.process.pid).children()]

    def stop(self) -> None:
        stop_session(self.process, grace_s=20)
