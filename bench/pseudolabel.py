"""Pseudo-labeling throughput: rows written per second into PostgreSQL, end to end, real workers.

Data: the 7,073-row DrugBank sample and a synthetic table (default 1,000,000 rows) made from the
sample's blinded sentence patterns with random drug names, both in their own database
(ddi_bench_pseudolabel on 127.0.0.1). Model: tiny-random-bert fine-tuned on the 192 seed labels
(--backbone to change; the DrugBank patterns repeat, so after the per-worker cache of prediction
values inference costs nothing and the database write path dominates either way).

For each table, 1 and 2 `celery worker --pool solo` processes (Redis db 3 as broker) run a
pseudo-labeling run of a fresh model version: wall time from start_pseudolabel_run to the Run
row's success (planning included), each worker's CPU time and its PostgreSQL backends' CPU time
(the machine is shared, so CPU seconds are the load-independent cost), the load average, and each
worker's peak RSS (VmHWM). The naive way (a transformers text-classification pipeline over every
row, built over the same merged weights as bench/inference.py does, then one ORM save per
prediction) is timed on --naive-rows rows of the sample and its rows/s extrapolated.

    .venv/bin/python bench/pseudolabel.py [--rows 1000000] [--naive-rows 1000] [--workers 1,2]
    .venv/bin/python bench/pseudolabel.py --rows 100000 --workers 1   # a quick run
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import contextlib

from bench._measure import OUT, REPO, SAMPLE_CSV, SEED_CSV, print_table

PG = "postgres://postgres@127.0.0.1:5432/"
DB = "ddi_bench_pseudolabel"
BROKER = "redis://127.0.0.1:6379/3"


def _env() -> dict:
    return {
        **os.environ,
        "DATABASE_URL": PG + DB,
        "CELERY_BROKER_URL": BROKER,
        "DJANGO_SETTINGS_MODULE": "ddi_site.settings",
    }


def _cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BackendCpu:
    """CPU seconds of the PostgreSQL backends whose application_name starts with a prefix.

    Celery's Django fixup closes the database connection after every task, so each chunk has
    its own short-lived backend: sample() reads /proc for every such backend and keeps the last
    value seen per pid. CPU a backend spends after the last sample is missed (a lower bound;
    sampled every 0.1 s, chunks take seconds).
    """

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.seen: dict[int, float] = {}

    def sample(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s",
                [self.prefix + "%"],
            )
            pids = [row[0] for row in cursor.fetchall()]
        for pid in pids:
            with contextlib.suppress(OSError, IndexError, ValueError):
                self.seen[pid] = _cpu_seconds(pid)

    def total(self) -> float:
        return sum(self.seen.values())


def setup(backbone: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB]).fetchone():
            c.execute(f"CREATE DATABASE {DB}")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=_env(), check=True
    )
    os.environ.update(_env())
    import django

    django.setup()


def train_model(backbone: str) -> Path:
    from modeling.blinding import blind
    from modeling.config import TrainConfig
    from modeling.training import TrainExample, train

    out = OUT / f"pseudolabel-model-{backbone}"
    if (out / "model.json").is_file():
        return out
    with open(SEED_CSV, newline="", encoding="utf-8") as f:
        examples = [
            TrainExample(blind(r["Interaction Description"], r["Drug 1"], r["Drug 2"]), r["label"])
            for r in csv.DictReader(f)
        ]
    started = time.perf_counter()
    train(
        examples,
        classes=["Synergistic", "Antagonistic"],
        config=TrainConfig(backbone=backbone, epochs=3),
        out_dir=out,
    )
    print(
        f"trained {backbone} on {len(examples)} seed labels in "
        f"{time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return out


def _sample_rows() -> list[tuple[str, str, str, str]]:
    from modeling.blinding import blind

    with open(SAMPLE_CSV, newline="", encoding="utf-8") as f:
        return [
            (
                r["Drug 1"],
                r["Drug 2"],
                r["Interaction Description"],
                blind(r["Interaction Description"], r["Drug 1"], r["Drug 2"]),
            )
            for r in csv.DictReader(f)
        ]


def populate(name: str, rows: list[tuple[str, str, str, str]] | None, synthetic: int = 0):
    """Project `name` with the given rows, or `synthetic` rows from the sample's patterns (COPY)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from annotations.models import Interaction, Project

    project, _ = Project.objects.get_or_create(name=name)
    want = len(rows) if rows is not None else synthetic
    if Interaction.objects.filter(project=project).count() == want:
        return project
    Interaction.objects.filter(project=project).delete()
    if rows is None:
        patterns = sorted({r[3] for r in _sample_rows() if "DRUG_A" in r[3] and "DRUG_B" in r[3]})
        rng = random.Random(7)
        rows = []
        for n in range(synthetic):
            text = patterns[rng.randrange(len(patterns))]
            a, b = f"Drug{n}x", f"Drug{rng.randrange(10**6)}y"
            rows.append((a, b, text.replace("DRUG_A", a).replace("DRUG_B", b), text))
    started = time.perf_counter()
    now = timezone.now()
    with (
        transaction.atomic(),
        connection.cursor() as cursor,
        cursor.cursor.copy(
            "COPY annotations_interaction (project_id, drug_a, drug_b, description, blinded_text,"
            " pattern_hash, content_hash, source_file, external_id_a, external_id_b, split, extra,"
            " created_at) FROM STDIN"
        ) as copy,
    ):
        for n, (a, b, text, blinded) in enumerate(rows):
            copy.write_row(
                (
                    project.pk,
                    a,
                    b,
                    text,
                    blinded,
                    hashlib.sha256(blinded.encode()).hexdigest(),
                    f"{n}",
                    "bench",
                    "",
                    "",
                    "",
                    "{}",
                    now,
                )
            )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"populated {name}: {len(rows)} rows in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return project


def _new_version(project, artifact: Path):
    from django.db.models import Max

    from annotations.models import ModelVersion

    number = (project.model_versions.aggregate(n=Max("number"))["n"] or 0) + 1
    return ModelVersion.objects.create(
        project=project,
        number=number,
        backbone="bench",
        artifact_path=str(artifact),
        status="ready",
        is_active=False,
        metrics={"macro_f1": 0.0},
    )


def _start_worker(name: str, log: Path, sizes: dict) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "ddi_site",
        "worker",
        "-Q",
        "default,training,inference",
        "--pool",
        "solo",
        "-n",
        f"{name}@%h",
        "-l",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    # A persistent connection (as a production worker would keep) so the backend's CPU time can
    # be read at the end; chunk and batch sizes from the flags.
    env = {**_env(), "DB_APPLICATION_NAME": f"bench-{name}", "DB_CONN_MAX_AGE": "600", **sizes}
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wait_ready(logs: list[Path], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(" ready." in log.read_text(errors="replace") for log in logs):
            return
        time.sleep(0.5)
    raise SystemExit(f"workers did not start; see {logs}")


def measure_workers(project, artifact: Path, n_workers: int, sizes: dict) -> dict:
    """End-to-end rows/s of a run on `n_workers` solo workers; their CPU time and peak RSS."""
    import redis

    from annotations.models import Run
    from annotations.services.jobs.starting import start_pseudolabel_run

    redis.Redis.from_url(BROKER).flushdb()
    logs = [OUT / f"pseudolabel-worker{i}.log" for i in range(n_workers)]
    for log in logs:
        log.unlink(missing_ok=True)
    workers = [_start_worker(f"bench{i}", log, sizes) for i, log in enumerate(logs)]
    _wait_ready(logs)  # worker start-up (imports torch) is not part of the measured run
    version = _new_version(project, artifact)
    cpu_before = sum(_cpu_seconds(w.pid) for w in workers)
    backends = BackendCpu("bench-")
    backends.sample()
    pg_before = backends.total()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    run = start_pseudolabel_run(project=project, model_version=version)
    while True:
        run.refresh_from_db()
        if not run.is_active:
            break
        backends.sample()
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    cpu = sum(_cpu_seconds(w.pid) for w in workers) - cpu_before
    backends.sample()
    pg_cpu = backends.total() - pg_before
    load = (load_before + os.getloadavg()[0]) / 2
    rss = [_peak_rss_mib(w.pid) for w in workers]
    for w in workers:
        os.killpg(w.pid, 15)
        w.wait(timeout=30)
    assert run.state == Run.State.SUCCEEDED, run.error
    rows = run.progress_done
    return {
        "rows": rows,
        "seconds": seconds,
        "rows_s": rows / seconds,
        "rss": max(rss),
        "cpu": cpu,
        "pg_cpu": pg_cpu,
        "load": load,
    }


def measure_naive(project, artifact: Path, n: int) -> dict:
    """A transformers pipeline over every row (no de-duplication), one ORM save per prediction."""
    import numpy as np
    from transformers.utils import logging as hf_logging

    from annotations.models import Interaction, Prediction
    from bench.inference import build_pipeline

    hf_logging.set_verbosity_error()  # "model not supported for text-classification": it works
    version = _new_version(project, artifact)
    classifier, classes = build_pipeline(artifact)
    rows = list(
        Interaction.objects.filter(project=project)
        .order_by("pk")
        .values_list("pk", "blinded_text")[:n]
    )
    cpu_before = time.process_time()
    started = time.perf_counter()
    outputs = classifier([text for _, text in rows], batch_size=32, truncation=True, max_length=64)
    for (pk, _), output in zip(rows, outputs, strict=True):
        scores = {d["label"]: d["score"] for d in output}
        probs = np.array([scores[name] for name in classes], dtype=np.float64)
        ranked = np.sort(probs)
        Prediction.objects.create(
            interaction_id=pk,
            model_version=version,
            predicted_class=classes[int(probs.argmax())],
            confidence=float(ranked[-1]),
            margin=float(ranked[-1] - ranked[-2]),
            probabilities=probs.tolist(),
        )
    seconds = time.perf_counter() - started
    return {
        "rows": len(rows),
        "seconds": seconds,
        "rows_s": len(rows) / seconds,
        "cpu": time.process_time() - cpu_before,
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="synthetic table size (0: none)"
    )
    parser.add_argument("--naive-rows", type=int, default=1000, help="0 skips the naive way")
    parser.add_argument("--backbone", default="tiny-random-bert")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure")
    parser.add_argument("--chunk-size", type=int, default=20_000, help="interactions per chunk")
    parser.add_argument("--batch-size", type=int, default=5_000, help="rows per transaction")
    parser.add_argument("--skip-sample", action="store_true", help="only the synthetic table")
    args = parser.parse_args()
    sizes = {
        "DDI_PSEUDOLABEL_CHUNK_SIZE": str(args.chunk_size),
        "DDI_PSEUDOLABEL_BATCH_SIZE": str(args.batch_size),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    setup(args.backbone)
    artifact = train_model(args.backbone)
    sample = populate("pl-sample", _sample_rows())
    tables = [] if args.skip_sample else [("sample 7,073", sample)]
    if args.rows:
        tables.append((f"synthetic {args.rows:,}", populate("pl-synthetic", None, args.rows)))
    results = []
    if args.naive_rows:
        naive = measure_naive(sample, artifact, args.naive_rows)
        results.append(
            [
                "naive: pipeline + ORM save/row",
                f"sample, first {naive['rows']:,}",
                "1 (in-process)",
                f"{naive['seconds']:.1f}",
                f"{naive['rows_s']:,.0f}",
                f"{naive['cpu']:.1f}",
                "(in ORM)",
                f"{naive['rows'] / naive['cpu']:,.0f}",
                "-",
                f"{naive['load']:.1f}",
            ]
        )
    for label, project in tables:
        for n in (int(x) for x in args.workers.split(",")):
            m = measure_workers(project, artifact, n, sizes)
            print(f"{label}, {n} worker(s): {m}", file=sys.stderr)
            results.append(
                [
                    "ours: chunks + cache + COPY",
                    label,
                    str(n),
                    f"{m['seconds']:.1f}",
                    f"{m['rows_s']:,.0f}",
                    f"{m['cpu']:.1f}",
                    f"{m['pg_cpu']:.1f}",
                    f"{m['rows'] / max(m['cpu'] + m['pg_cpu'], 1e-9):,.0f}",
                    f"{m['rss']:.0f}",
                    f"{m['load']:.1f}",
                ]
            )
    print(
        f"\nbackbone {args.backbone}; chunk {args.chunk_size:,}, batch {args.batch_size:,}; "
        f"naive rows/s measured on {args.naive_rows:,} rows and extrapolated; wall times include "
        "planning and the final Run update; 'rows/CPU-s' = rows / (worker + PostgreSQL backend "
        "CPU seconds), what one idle core would sustain; load = 1-min load average "
        f"(2 cores, shared machine)"
    )
    print_table(
        [
            "method",
            "table",
            "workers",
            "wall s",
            "rows/s",
            "worker CPU s",
            "PG CPU s (>=)",
            "rows/CPU-s",
            "peak worker RSS MiB",
            "load",
        ],
        results,
    )


if __name__ == "__main__":
    main()
