"""Benchmark: the review queue page on 1,000,000 interactions in PostgreSQL.

Builds (once; reused on later runs) a project of N interactions (default 1,000,000) in its own
database ``ddi_bench_queue``: 50 sentence patterns, 4,000 + 3,001 drug names, 10 source files,
one active model version with a random calibrated prediction per row, 10% of rows labeled.
Rows are generated server-side (INSERT ... SELECT over generate_series), then ANALYZEd.

Then it times, as a reviewer sees them, the queue's first page, a deep keyset page (the cursor
of the row at rank N/2) and each filter, and prints them beside a baseline:
- first page / filters: the same query with index scans disabled (what it costs without the
  (model_version, confidence, interaction) index: a full scan and a top-N sort);
- deep page: the naive ``ORDER BY confidence, margin, interaction_id OFFSET N/2 LIMIT 25``.
The plan column names the index EXPLAIN ANALYZE chose.

Run: ``.venv/bin/python bench/review_queue.py`` (building 1M rows takes ~1-3 minutes on 2 cores;
``--rows 100000`` for a quick look, ``--rebuild`` to start over). Needs PostgreSQL at
``BENCH_PG_URL`` (default postgres://postgres@127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

BENCH_DB = "ddi_bench_queue"
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
REPEAT = 5


def ensure_database(rebuild: bool) -> None:
    import psycopg

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
        if exists and rebuild:
            conn.execute(f'DROP DATABASE "{BENCH_DB}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def setup_django() -> None:
    os.environ["DATABASE_URL"] = f"{PG_URL}/{BENCH_DB}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ddi_site.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build(rows: int) -> None:
    """Generate the project's rows in SQL (idempotent: skipped when the project is complete)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection, transaction

    from annotations.models import Interaction, ModelVersion, Project
    from annotations.roles import Role

    project, _ = Project.objects.get_or_create(name=f"Bench queue {rows}")
    user, _ = get_user_model().objects.get_or_create(username="bench-reviewer")
    user.groups.add(Group.objects.get(name=Role.REVIEWER))
    version, _ = ModelVersion.objects.get_or_create(
        project=project,
        number=1,
        defaults={"backbone": "bench", "status": ModelVersion.Status.READY, "is_active": True},
    )
    if Interaction.objects.filter(project=project).count() == rows:
        # Statistics of expression indexes added by a later migration exist only after ANALYZE.
        with connection.cursor() as cur:
            cur.execute("ANALYZE annotations_interaction")
        return
    print(f"building {rows:,} interactions in {BENCH_DB} ...", flush=True)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("DELETE FROM annotations_interaction WHERE project_id = %s", [project.pk])
        cur.execute(
            """
            INSERT INTO annotations_interaction
              (project_id, drug_a, drug_b, description, blinded_text, pattern_hash, content_hash,
               source_file, source_line, external_id_a, external_id_b, split, extra, created_at)
            SELECT %(p)s, d.a, d.b,
                   replace(replace(t.pattern, 'DRUG_A', d.a), 'DRUG_B', d.b),
                   t.pattern, md5(t.pattern), md5(g::text),
                   'batch' || (g %% 10) || '.csv', g, '', '', '', '{}'::jsonb, now()
            FROM generate_series(1, %(n)s) AS g
            CROSS JOIN LATERAL (
              SELECT 'Drug' || lpad((g %% 4000)::text, 4, '0') AS a,
                     'Med' || lpad(((g * 7) %% 3001)::text, 4, '0') AS b
            ) AS d
            CROSS JOIN LATERAL (
              SELECT 'DRUG_A may ' || (ARRAY['increase', 'decrease'])[1 + g %% 2]
                     || ' the effect number ' || (g %% 50) || ' of DRUG_B.' AS pattern
            ) AS t
            """,
            {"p": project.pk, "n": rows},
        )
        # Two classes; margin = top-1 minus top-2 probability.
        cur.execute(
            """
            INSERT INTO annotations_prediction
              (interaction_id, model_version_id, predicted_class, confidence, margin,
               probabilities)
            SELECT id, %(v)s, CASE WHEN s THEN 'Synergistic' ELSE 'Antagonistic' END, c, 2 * c - 1,
                   CASE WHEN s THEN jsonb_build_array(c, 1 - c) ELSE jsonb_build_array(1 - c, c) END
            FROM (SELECT id, 0.5 + random() * 0.5 AS c, random() < 0.5 AS s
                  FROM annotations_interaction WHERE project_id = %(p)s) AS r
            """,
            {"v": version.pk, "p": project.pk},
        )
        cur.execute(
            """
            INSERT INTO annotations_label
              (interaction_id, label_class, status, source, note, version, created_at, updated_at)
            SELECT id, 'Synergistic', 'labeled', 'seed', '', 1, now(), now()
            FROM annotations_interaction WHERE project_id = %s AND id %% 10 = 0
            """,
            [project.pk],
        )
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    print(f"built in {time.perf_counter() - started:.0f} s", flush=True)


def plan_indexes(plan: dict) -> list[str]:
    found = []
    if "Index Name" in plan:
        found.append(plan["Index Name"])
    for child in plan.get("Plans", []):
        found += plan_indexes(child)
    return found


def summarize(explained: str) -> str:
    data = json.loads(explained) if isinstance(explained, str) else explained
    root = data[0]["Plan"]
    names = sorted(set(plan_indexes(root)))
    return ", ".join(names) if names else "no index (seq scan)"


def median_ms(function) -> float:
    function()  # warm the cache
    samples = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def without_indexes(function):
    from django.db import connection, transaction

    def run():
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SET LOCAL enable_indexscan = off")
            cur.execute("SET LOCAL enable_bitmapscan = off")
            cur.execute("SET LOCAL enable_indexonlyscan = off")
            return function()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--only", default="", help="measure only cases containing this text")
    args = parser.parse_args()
    ensure_database(args.rebuild)
    setup_django()
    build(args.rows)

    from _measure import print_table
    from django.contrib.auth import get_user_model

    from annotations.models import Prediction, Project
    from annotations.selectors import queue as q
    from annotations.selectors.queue.rows import _prediction_rows
    from annotations.selectors.versions import get_serving_model_version

    project = Project.objects.get(name=f"Bench queue {args.rows}")
    user = get_user_model().objects.get(username="bench-reviewer")
    version = get_serving_model_version(project=project)
    half = args.rows // 2
    deep = (
        Prediction.objects.filter(model_version=version)
        .order_by("confidence", "margin", "interaction_id")
        .values_list("confidence", "margin", "interaction_id")[half : half + 1]
    )
    deep_cursor = q.QueueCursor(*next(iter(deep)))

    cases = [
        ("first page", q.QueueFilters(), None),
        ("deep keyset page (rank N/2)", q.QueueFilters(), deep_cursor),
        ("class = Antagonistic", q.QueueFilters(predicted_class="Antagonistic"), None),
        ("confidence 0.7-0.8", q.QueueFilters(min_confidence=0.7, max_confidence=0.8), None),
        ("all rows (reviewed too)", q.QueueFilters(unreviewed_only=False), None),
        ("source = batch3.csv", q.QueueFilters(source="batch3.csv"), None),
        ("text contains 'number 7 '", q.QueueFilters(text="number 7 "), None),
        ("drug = drug0042 (rare)", q.QueueFilters(drug="drug0042"), None),
    ]
    rows = []
    for name, filters, cursor in cases:
        if args.only not in name:
            continue

        def page(filters=filters, cursor=cursor):
            return q.get_review_queue_page(
                project=project, user=user, filters=filters, cursor=cursor
            )

        def main_query(filters=filters, cursor=cursor):
            return _prediction_rows(
                project=project, user=user, filters=filters, model_version=version, cursor=cursor
            )[: q.DEFAULT_PAGE_SIZE * q.SPREAD_WINDOW_FACTOR + 1]

        ours = median_ms(page)
        n_items = len(page().items)
        plan = summarize(main_query().explain(format="json", analyze=True))
        if cursor is None:
            baseline_name = "same query, index scans off"
            baseline = median_ms(without_indexes(lambda mq=main_query: list(mq())))
        else:
            baseline_name = f"ORDER BY ... OFFSET {half:,}"
            offset_qs = _prediction_rows(
                project=project, user=user, filters=filters, model_version=version, cursor=None
            )
            baseline = median_ms(lambda qs=offset_qs: list(qs[half : half + q.DEFAULT_PAGE_SIZE]))
        rows.append([name, n_items, f"{ours:.1f}", plan, f"{baseline:.1f}", baseline_name])
        print(f"  measured {name}", file=sys.stderr, flush=True)
    print(f"\nReview queue page on {args.rows:,} interactions (PostgreSQL, median of {REPEAT}):\n")
    print_table(
        ["case", "rows", "ours ms", "index used (EXPLAIN ANALYZE)", "baseline ms", "baseline"],
        rows,
    )


if __name__ == "__main__":
    main()
