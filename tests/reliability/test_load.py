"""Scenario 15: the API under load (locust, loopback) while a pseudo-labeling run goes on.

gunicorn serves the app on PostgreSQL, a real Celery worker pseudo-labels the project, and
locust (loadtests/locustfile.py, a subprocess) drives reviewers through the mix 70% review
GET/PATCH with If-Match, 15% queue-next, 10% list/search, 5% small exports, plus a burst of 50
token logins a second from one IP. Meanwhile the test samples pg_stat_activity every second and
plays beat (the run watchdog).

Pass: no 5xx and no failed request at all, the login burst answered 429 (never 5xx), no
optimistic-lock false positive (each simulated reviewer edits only its own labels, so any 409/412
is false), p95 budgets, connections below max_connections - 20, and the run finishes exact.

CI: 2,000 interactions, 20 users for 40 s. `DDI_CHAOS_LONG=1`: 20,000 interactions, two workers,
200 users for 10 minutes. Figures go to stdout and to DDI_CHAOS_FIGURES (pytest shows a passing
test's output only with -s).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection

from annotations.models import Label, Run
from annotations.roles import Role
from annotations.services.jobs.starting import start_pseudolabel_run
from annotations.services.jobs.watchdog import requeue_stale_runs
from annotations.tokens import issue_token
from tests.e2e.chaos_support import figure
from tests.e2e.test_pseudolabel_workers import assert_run_exact, wait_until_finished
from tests.factories import ProjectFactory, UserFactory
from tests.harness.data import make_interactions, ready_version, seed_labels
from tests.harness.environment import celery_broker
from tests.harness.processes import REDIS_DB, REDIS_URL, ROOT, WorkerPool, worker_env
from tests.reliability.conftest import LONG

# `chaos`: `make chaos` (DDI_CHAOS_LONG=1 pytest -m chaos) runs the long variant; the short one
# runs in CI with everything else. The long one needs more than the default 600 s timeout.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.chaos,
    pytest.mark.postgres,
    pytest.mark.timeout(1800 if LONG else 600),
]

INTERACTIONS = 20_000 if LONG else 2_000
USERS = 200 if LONG else 20  # locust -u; one of them is the login-burst client
SPAWN_RATE = 20 if LONG else 10
DURATION = "10m" if LONG else "30s"
LABELS_EACH = 20 if LONG else 10  # labels each simulated reviewer (alone) edits
WORKERS = 2 if LONG else 1
GUNICORN = {"workers": 4, "threads": 8} if LONG else {"workers": 2, "threads": 4}
# The run should last about as long as the load: each batch of the worker sleeps this long.
RUN_KNOBS = (
    {"DDI_PSEUDOLABEL_BATCH_SIZE": "50", "FAULT_PSEUDOLABEL_DELAY_S": "1.0"}
    if LONG
    else {"DDI_PSEUDOLABEL_BATCH_SIZE": "20", "FAULT_PSEUDOLABEL_DELAY_S": "0.15"}
)
BURST = {"per_second": 50, "seconds": 10 if LONG else 5, "start_after_s": 5}
STOP_TIMEOUT_S = 120
LOGIN_RATE_PER_MIN = 10  # annotations/api/throttling.py DEFAULT_LOGIN_RATE, per gunicorn worker

# p95 budgets in ms, for the steady mix. The agreed ones (RELIABILITY.md) are asserted in the long
# variant, run on a machine of its own. CI shares two cores between gunicorn, the worker, locust,
# PostgreSQL and other jobs (load average 10-18 on the dev box), so there the budget is ten times
# as generous: it still catches a pathological regression (a lock wait, a full scan per request)
# without failing on scheduler noise. The measured p95s are printed either way.
# Requests sent while the login burst is in flight are reported apart (locustfile DURING_BURST):
# the burst's own allowance of real logins (PBKDF2, 10/min per gunicorn worker) stalls a small
# server for seconds; that stall is printed, not budgeted (a proxy limit is the remedy for it).
AGREED_P95_MS = {"PATCH /api/labels/[id]/": 300, "GET /api/interactions/?search=": 500}
P95_BUDGET_MS = AGREED_P95_MS if LONG else {k: 10 * v for k, v in AGREED_P95_MS.items()}

LOGIN = {"username": "load-login", "password": "correct horse battery staple"}
CLASSES = ["Synergistic", "Antagonistic"]


# A Redis database of its own: this test runs beside the tests/e2e group (tests/conftest.py).
LOAD_REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + f"/{REDIS_DB + 1}"


def clean_broker() -> str:
    # Stale messages of an earlier run go; kombu's queue bindings stay (tests/e2e does the same).
    client = redis.Redis.from_url(LOAD_REDIS_URL)
    stale = [k for k in client.keys("*") if not k.startswith(b"_kombu.binding.")]
    if stale:
        client.delete(*stale)
    return LOAD_REDIS_URL


def write_plan(project, interactions, path: Path) -> dict:
    """Reviewers with tokens and disjoint label sets, a curator, search terms -> plan JSON."""
    reviewer_group = Group.objects.get_or_create(name=str(Role.REVIEWER))[0]
    # One unusable password each: hashing USERS real passwords would cost seconds of CPU.
    reviewers = get_user_model().objects.bulk_create(
        get_user_model()(username=f"load-reviewer{i:03d}", password="!") for i in range(USERS)
    )
    reviewer_group.user_set.add(*reviewers)
    keys = {u.pk: issue_token(u) for u in reviewers}  # hashed: SHA-512 each, no password hash
    curator = UserFactory(username="load-curator", role=Role.CURATOR)
    curator_token = issue_token(curator)
    # The login burst has its own user: each token login rotates that user's token, so it must
    # not be the curator whose token the export requests use.
    UserFactory(username=LOGIN["username"], password=LOGIN["password"], role=Role.CURATOR)

    seed_labels(interactions[: USERS * LABELS_EACH])
    label_of = dict(Label.objects.values_list("interaction_id", "pk"))
    entries = []
    for index, user in enumerate(reviewers):
        mine = interactions[index * LABELS_EACH : (index + 1) * LABELS_EACH]
        entries.append({"token": keys[user.pk], "labels": [label_of[i.pk] for i in mine]})
    terms = [f"Alphazol{i}" for i in range(0, INTERACTIONS, max(1, INTERACTIONS // 20))]
    terms += ["anticoagulant", "serum concentration of", "therapeutic efficacy", "no such drug"]
    plan = {
        "project_id": project.pk,
        "classes": list(project.label_classes),
        "curator_token": curator_token,
        "reviewers": entries,
        "search_terms": terms,
        "login": LOGIN,
        "burst": BURST,
    }
    path.write_text(json.dumps(plan))
    return plan


def start_locust(url: str, plan: Path, out: Path) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).parent / "locust"),
        "-f",
        str(ROOT / "loadtests" / "locustfile.py"),
        "--headless",
        "-u",
        str(USERS),
        "-r",
        str(SPAWN_RATE),
        "-t",
        DURATION,
        # A user's task in flight when the run time is up finishes first: the burst's pool.join()
        # waits for every login answer (a PBKDF2 backlog can outlast the run time on 2 busy cores;
        # without this, CI once counted 199 answers of 250 sent).
        "--stop-timeout",
        str(STOP_TIMEOUT_S),
        "--host",
        url,
        "--csv",
        str(out / "load"),
        "--exit-code-on-error",
        "0",
        "--only-summary",
    ]
    env = {**os.environ, "DDI_LOAD_PLAN": str(plan), "DDI_LOAD_STATUS": str(out / "status.json")}
    with open(out / "locust.log", "ab") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def read_stats(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "load_stats.csv", newline="") as stats:
        return {row["Name"]: row for row in csv.DictReader(stats)}


def read_failures(out: Path) -> list[dict[str, str]]:
    with open(out / "load_failures.csv", newline="") as failures:
        return list(csv.DictReader(failures))


def pg_sampler():
    """A connection of its own (not the app's, not Django's) for pg_stat_activity samples."""
    db = connection.settings_dict
    return psycopg.connect(
        host=db.get("HOST") or "127.0.0.1",
        port=db.get("PORT") or 5432,
        user=db.get("USER") or "postgres",
        dbname=db["NAME"],
        autocommit=True,
        application_name="ddi-load-sampler",
    )


def test_the_api_under_load_during_a_pseudolabel_run_serves_no_5xx_and_the_run_stays_exact(
    live_gunicorn, tiny_artifact, tmp_path, settings
):
    test_started = time.monotonic()
    broker_url = clean_broker()
    # The test process plays beat: the run watchdog with short thresholds.
    settings.DDI_REQUEUE_QUEUED_AFTER_S = 5
    settings.DDI_STALE_AFTER_S = 15
    project = ProjectFactory(name="Load test", label_classes=CLASSES)
    interactions = make_interactions(project, INTERACTIONS)
    ready_version(project, tiny_artifact)
    plan_path = tmp_path / "plan.json"
    write_plan(project, interactions, plan_path)

    pool = WorkerPool(worker_env(tmp_path, broker_url), tmp_path)
    sampler = pg_sampler()
    locust = None
    try:
        # Workers import torch while gunicorn starts: both in parallel.
        workers = [pool.start(f"w{i}", wait=False, **RUN_KNOBS) for i in range(WORKERS)]
        server = live_gunicorn(CELERY_BROKER_URL=broker_url, **GUNICORN)
        for worker in workers:
            worker.wait_ready()
        max_connections = int(sampler.execute("SHOW max_connections").fetchone()[0])

        with celery_broker(broker_url, {"visibility_timeout": 30}):
            run_started = time.monotonic()
            setup_s = run_started - test_started
            run = start_pseudolabel_run(project=project)
            locust = start_locust(server.url, plan_path, tmp_path)
            load_started = time.monotonic()
            run.refresh_from_db()
            done_at_load_start = run.progress_done
            samples: list[tuple[int, int]] = []
            run_finished_during_load = None
            while locust.poll() is None:
                samples.append(
                    sampler.execute(
                        "SELECT count(*), count(*) FILTER (WHERE datname = current_database()) "
                        "FROM pg_stat_activity"
                    ).fetchone()
                )
                if run_finished_during_load is None:
                    requeue_stale_runs()
                    run.refresh_from_db()
                    if not run.is_active:
                        run_finished_during_load = time.monotonic()
                time.sleep(1.0)
                assert time.monotonic() - load_started < _seconds(DURATION) + STOP_TIMEOUT_S + 60, (
                    "locust hung"
                )
            load_s = time.monotonic() - load_started
            run.refresh_from_db()
            done_at_load_end = run.progress_done
            run = wait_until_finished(run, pool, timeout=900 if LONG else 180)
            run_s = (run_finished_during_load or time.monotonic()) - run_started
        assert locust.returncode == 0, (tmp_path / "locust.log").read_text()[-4000:]
        assert_run_exact(run, pool)
    finally:
        if locust is not None and locust.poll() is None:
            locust.kill()  # only after a failed assertion above
            locust.wait()
        sampler.close()
        pool.stop_all()

    stats = read_stats(tmp_path)
    failures = read_failures(tmp_path)
    statuses = json.loads((tmp_path / "status.json").read_text())
    total = stats["Aggregated"]
    max_total = max(total_count for total_count, _ in samples)
    max_ours = max(ours for _, ours in samples)
    p95 = {name: int(float(row["95%"])) for name, row in stats.items() if name != "Aggregated"}
    burst = statuses.get("POST /api/auth/token/ (burst)", {})
    conflicts = sum(
        codes.get(c, 0)
        for name, codes in statuses.items()
        if name.startswith("PATCH /api/labels/")
        for c in ("409", "412")
    )
    server_errors = {
        name: {code: n for code, n in codes.items() if code.startswith("5") or code == "0"}
        for name, codes in statuses.items()
    }
    server_errors = {name: codes for name, codes in server_errors.items() if codes}

    table = [
        ("requests served", total["Request Count"]),
        ("failures", total["Failure Count"]),
        ("5xx / no answer", sum(sum(c.values()) for c in server_errors.values())),
        ("409/412 on own labels", conflicts),
        ("login burst answers", dict(sorted(burst.items()))),
        *((f"p95 {name} (ms)", value) for name, value in sorted(p95.items())),
        ("p95 all (ms)", int(float(total["95%"]))),
        ("pg_stat_activity max (all / this db)", f"{max_total} / {max_ours}"),
        ("max_connections", max_connections),
        ("users x duration", f"{USERS} x {load_s:.0f}s"),
        ("run: interactions", INTERACTIONS),
        ("run duration (s)", f"{run_s:.1f}"),
        ("run progress during load", f"{done_at_load_start} -> {done_at_load_end}"),
        ("setup: model, seed, gunicorn + worker (s)", f"{setup_s:.1f}"),
        ("test total (s)", f"{time.monotonic() - test_started:.1f}"),
    ]
    width = max(len(name) for name, _ in table)
    print("\nscenario 15 (load during a pseudo-label run):")
    for name, value in table:
        print(f"  {name:<{width}}  {value}")
        figure(f"load.{name}", value)

    assert not server_errors, server_errors
    assert conflicts == 0, f"{conflicts} optimistic-lock false positives"
    assert not failures, failures[:10]
    assert int(total["Request Count"]) > 0
    # The burst: every answer a 200 (the throttle's allowance) or a 429, and mostly 429s.
    sent = BURST["per_second"] * BURST["seconds"]
    assert sum(burst.values()) == sent, burst
    assert set(burst) <= {"200", "429"}, burst
    # The throttle counts per gunicorn worker (local-memory cache); the burst and its backlog
    # span less than two of its one-minute windows.
    allowance = LOGIN_RATE_PER_MIN * GUNICORN["workers"] * 2
    assert burst.get("429", 0) >= sent - allowance, burst
    for name, budget in P95_BUDGET_MS.items():
        assert p95[name] < budget, f"p95 {name} = {p95[name]} ms >= {budget} ms"
    assert max_total < max_connections - 20, (max_total, max_connections)
    # The load ran while the run was going on.
    assert done_at_load_start < INTERACTIONS, "the run ended before the load started"
    assert done_at_load_end > done_at_load_start, "the run made no progress under load"
    assert run.state == Run.State.SUCCEEDED


def _seconds(duration: str) -> int:
    unit = {"s": 1, "m": 60, "h": 3600}[duration[-1]]
    return int(duration[:-1]) * unit
