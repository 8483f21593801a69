"""Pseudo-labeling throughput: rows written per second into PostgreSQL, end to end, real workers.

Data: the 7,073-row DrugBank sample and a synthetic table (default 1,000,000 rows) made from the
sample's blinded sentence patterns with random drug names, both in their own database
(ddi_bench_pseudolabel on 127.0.0.1). Model: tiny-random-bert fine-tuned on the 192 seed labels
(--backbone to change; the DrugBank patterns repeat, so inference is cheap after deduplication and
the database write path dominates either way).

For each table, 1 and 2 `celery worker --pool solo` processes (Redis db 3 as broker) run a
pseudo-labeling run of a fresh model version: time from start_pseudolabel_run to the Run row's
success, and each worker's peak RSS (VmHWM). The naive way (one model call per row, no
deduplication or batching, one ORM save per prediction) is timed on 2,000 rows of the sample and
its rows/s extrapolated.

    .venv/bin/python bench/pseudolabel.py [--rows 1000000] [--naive-rows 2000]
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
    with transaction.atomic(), connection.cursor() as cursor, cursor.cursor.copy(
        "COPY annotations_interaction (project_id, drug_a, drug_b, description, blinded_text,"
        " pattern_hash, content_hash, source_file, external_id_a, external_id_b, split, extra,"
        " created_at) FROM STDIN"
    ) as copy:
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


def _start_worker(name: str, log: Path) -> subprocess.Popen:
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
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    env = {**_env(), "DB_APPLICATION_NAME": f"bench-{name}"}
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_workers(project, artifact: Path, n_workers: int) -> dict:
    """End-to-end rows/s of a run on `n_workers` solo workers, and their peak RSS."""
    import redis

    from annotations.models import Run
    from annotations.services.runs import start_pseudolabel_run

    redis.Redis.from_url(BROKER).flushdb()
    workers = [
        _start_worker(f"bench{i}", OUT / f"pseudolabel-worker{i}.log") for i in range(n_workers)
    ]
    time.sleep(12)  # worker start-up (imports torch) is not part of the measured run
    version = _new_version(project, artifact)
    started = time.perf_counter()
    run = start_pseudolabel_run(project=project, model_version=version)
    while True:
        run.refresh_from_db()
        if not run.is_active:
            break
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    rss = [_peak_rss_mib(w.pid) for w in workers]
    for w in workers:
        os.killpg(w.pid, 15)
        w.wait(timeout=30)
    assert run.state == Run.State.SUCCEEDED, run.error
    rows = run.progress_done
    return {"rows": rows, "seconds": seconds, "rows_s": rows / seconds, "rss": max(rss)}


def measure_naive(project, artifact: Path, n: int) -> dict:
    """One model call per row (no dedup/batching) and one ORM save per prediction."""
    import numpy as np

    from annotations.models import Interaction, Prediction
    from modeling.inference import Predictor

    version = _new_version(project, artifact)
    predictor = Predictor.load(artifact)
    rows = list(
        Interaction.objects.filter(project=project)
        .order_by("pk")
        .values_list("pk", "blinded_text")[:n]
    )
    started = time.perf_counter()
    for pk, text in rows:
        probs = predictor.predict_batch([text])[0].astype(np.float64)
        ranked = np.sort(probs)
        Prediction.objects.create(
            interaction_id=pk,
            model_version=version,
            predicted_class=predictor.classes[int(probs.argmax())],
            confidence=float(ranked[-1]),
            margin=float(ranked[-1] - ranked[-2]),
            probabilities=probs.tolist(),
        )
    seconds = time.perf_counter() - started
    return {"rows": len(rows), "seconds": seconds, "rows_s": len(rows) / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="synthetic table size")
    parser.add_argument("--naive-rows", type=int, default=2000)
    parser.add_argument("--backbone", default="tiny-random-bert")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    setup(args.backbone)
    artifact = train_model(args.backbone)
    sample = populate("pl-sample", _sample_rows())
    tables = [("sample", sample)]
    if args.rows:
        tables.append((f"synthetic {args.rows:,}", populate("pl-synthetic", None, args.rows)))
    results = []
    naive = measure_naive(sample, artifact, args.naive_rows)
    results.append(
        [
            "naive (per-row model + ORM save)",
            f"sample, {naive['rows']} rows",
            "1 (in-process)",
            f"{naive['seconds']:.1f}",
            f"{naive['rows_s']:,.0f}",
            "-",
        ]
    )
    for label, project in tables:
        for n in (int(x) for x in args.workers.split(",")):
            m = measure_workers(project, artifact, n)
            results.append(
                [
                    "ours (chunks + COPY upsert)",
                    f"{label}",
                    str(n),
                    f"{m['seconds']:.1f}",
                    f"{m['rows_s']:,.0f}",
                    f"{m['rss']:.0f}",
                ]
            )
    print(
        f"\nbackbone {args.backbone}; naive rows/s measured on {args.naive_rows} rows and "
        "extrapolated; times include planning and the final Run update"
    )
    print_table(["method", "table", "workers", "seconds", "rows/s", "peak worker RSS MiB"], results)


if __name__ == "__main__":
    main()
