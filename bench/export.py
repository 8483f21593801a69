"""Export at scale: rows/s, time to first byte and peak RSS of the streaming export, per format,
side by side with a naive baseline (pandas DataFrame from the whole queryset, then to_csv).

Builds its own PostgreSQL database (ddi_bench_export) with one project per size, filled by COPY:
DrugBank-style sentences (a few dozen blinded patterns, random drug names), an active model
version with one prediction per row, 5% review labels, 5% seed labels, two rules. Each
measurement runs in a fresh child process, so its peak RSS is its own. Flat RSS across sizes is
the claim under test.

    python bench/export.py [--sizes 100000 1000000] [--naive-sizes 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG = "postgres://postgres@127.0.0.1:5432/"
DB = "ddi_bench_export"
PY = sys.executable
PATTERNS = [
    "DRUG_A may increase the anticoagulant activities of DRUG_B.",
    "DRUG_A may decrease the antihypertensive activities of DRUG_B.",
    "The serum concentration of DRUG_B can be increased when it is combined with DRUG_A.",
    "The serum concentration of DRUG_B can be decreased when it is combined with DRUG_A.",
    "The metabolism of DRUG_B can be decreased when combined with DRUG_A.",
    "The metabolism of DRUG_B can be increased when combined with DRUG_A.",
    "The risk or severity of adverse effects can be increased when DRUG_A is combined with DRUG_B.",
    "DRUG_A may decrease the excretion rate of DRUG_B which could result in a higher serum level.",
    "DRUG_A may increase the excretion rate of DRUG_B which could result in a lower serum level.",
    "The therapeutic efficacy of DRUG_B can be decreased when used in combination with DRUG_A.",
    "DRUG_A can cause a decrease in the absorption of DRUG_B resulting in a reduced serum "
    "concentration and potentially a decrease in efficacy.",
    "The bioavailability of DRUG_B can be increased when combined with DRUG_A.",
]


def _env() -> dict:
    return {**os.environ, "DATABASE_URL": PG + DB, "DJANGO_SETTINGS_MODULE": "ddi_site.settings"}


def _setup_django() -> None:
    os.environ.update(_env())
    import django

    django.setup()


# --- populate (child) ---------------------------------------------------------------------------


def populate(rows: int) -> None:
    """Create project bench-<rows> with `rows` interactions (COPY), predictions, labels, rules."""
    _setup_django()
    import hashlib

    from django.db import connection, transaction
    from django.utils import timezone

    from annotations.models import Interaction, ModelVersion, Project, Rule

    name = f"bench-{rows}"
    project, _ = Project.objects.get_or_create(name=name)
    if Interaction.objects.filter(project=project).count() == rows:
        return
    Interaction.objects.filter(project=project).delete()
    ModelVersion.objects.filter(project=project).delete()
    version = ModelVersion.objects.create(
        project=project,
        number=1,
        backbone="bench",
        status="ready",
        is_active=True,
        metrics={"macro_f1": 0.9},
    )
    Rule.objects.filter(project=project).delete()
    Rule.objects.create(
        project=project,
        name="excretion",
        pattern=r"increase the excretion",
        label_class="Antagonistic",
        priority=2,
    )
    Rule.objects.create(
        project=project,
        name="absorption",
        kind="keyword",
        pattern="absorption",
        label_class="Antagonistic",
        priority=1,
    )
    rng = random.Random(rows)
    now = timezone.now()
    hashes = [hashlib.sha256(p.encode()).hexdigest() for p in PATTERNS]
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.connection
        with raw.cursor().copy(
            "COPY annotations_interaction (project_id, drug_a, drug_b, description, blinded_text,"
            " pattern_hash, content_hash, source_file, external_id_a, external_id_b, split, extra,"
            " created_at) FROM STDIN"
        ) as copy:
            for n in range(rows):
                k = rng.randrange(len(PATTERNS))
                a, b = f"Drug{n}a", f"Drug{rng.randrange(10**6)}b"
                text = PATTERNS[k].replace("DRUG_A", a).replace("DRUG_B", b)
                copy.write_row(
                    (
                        project.pk,
                        a,
                        b,
                        text,
                        PATTERNS[k],
                        hashes[k],
                        f"{project.pk}-{n}",
                        "bench",
                        "",
                        "",
                        "",
                        "{}",
                        now,
                    )
                )
        cursor.execute(
            "INSERT INTO annotations_prediction (interaction_id, model_version_id, predicted_class,"
            " confidence, margin, probabilities)"
            " SELECT id, %s, CASE WHEN id %% 3 = 0 THEN 'Antagonistic' ELSE 'Synergistic' END,"
            " 0.5 + (id %% 500) / 1000.0, (id %% 500) / 500.0,"
            " json_build_array(0.5 + (id %% 500) / 1000.0, 0.5 - (id %% 500) / 1000.0)"
            " FROM annotations_interaction WHERE project_id = %s",
            [version.pk, project.pk],
        )
        cursor.execute(
            "INSERT INTO annotations_label (interaction_id, label_class, status, source, note,"
            " version, created_at, updated_at)"
            " SELECT id, 'Synergistic', 'labeled', CASE WHEN id %% 40 = 0 THEN 'review' ELSE 'seed'"
            " END, '', 1, %s, %s FROM annotations_interaction"
            " WHERE project_id = %s AND id %% 20 = 0",
            [now, now, project.pk],
        )
    # The rules' stored matches, as an import would have written them (not part of the export).
    from annotations.rule_matches import ensure_rule_matches

    ensure_rule_matches(project=project)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"populated {name}: {rows} rows in {time.perf_counter() - started:.0f} s", file=sys.stderr
    )


# --- measure (child) ------------------------------------------------------------------------------


def measure(rows: int, method: str, out_dir: Path) -> dict:
    """One export into out_dir; returns rows, seconds, ttfb, peak RSS (of this process)."""
    _setup_django()
    import resource

    from annotations.models import Project

    project = Project.objects.get(name=f"bench-{rows}")
    out = out_dir / f"export-{rows}.{method}"
    started = time.perf_counter()
    ttfb = None
    if method == "naive-csv":
        import pandas as pd

        from annotations.models import Interaction

        records = list(
            Interaction.objects.filter(project=project, predictions__model_version__is_active=True)
            .order_by("id")
            .values(
                "id",
                "drug_a",
                "drug_b",
                "description",
                "label__label_class",
                "label__source",
                "predictions__predicted_class",
                "predictions__confidence",
                "predictions__probabilities",
            )
        )
        frame = pd.DataFrame.from_records(records)
        frame.to_csv(out, index=False)
        produced = len(frame)
    else:
        from annotations.selectors.final_labels import FinalLabelFilters, FinalLabelStats
        from annotations.services.export import stream_export

        stats = FinalLabelStats()
        with out.open("wb") as handle:
            for chunk in stream_export(
                project=project, export_format=method, filters=FinalLabelFilters(), stats=stats
            ):
                if ttfb is None:
                    ttfb = time.perf_counter() - started
                handle.write(chunk)
        produced = stats.rows
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "rows": produced,
        "seconds": seconds,
        "ttfb": ttfb,
        "peak_rss_mib": peak,
        "bytes": out.stat().st_size,
    }


# --- parent -------------------------------------------------------------------------------------


def _child(*args: str) -> str:
    result = subprocess.run(
        [PY, __file__, *args], env=_env(), cwd=ROOT, capture_output=True, text=True
    )
    if result.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--naive-sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--formats", nargs="+", default=["csv", "jsonl", "parquet"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/ddi_bench_export"))
    parser.add_argument("--populate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.populate:
        populate(args.populate)
        return
    if args.measure:
        print(json.dumps(measure(int(args.measure[0]), args.measure[1], args.out)))
        return

    args.out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["psql", PG + "postgres", "-qc", f"CREATE DATABASE {DB}"], capture_output=True)
    subprocess.run([PY, "manage.py", "migrate", "-v0"], env=_env(), cwd=ROOT, check=True)
    for size in sorted(set(args.sizes) | set(args.naive_sizes)):
        _child("--populate", str(size))
    print(
        f"{'method':<10} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'TTFB s':>7} "
        f"{'peak RSS MiB':>12} {'MiB out':>8}"
    )
    jobs = [(m, s) for s in args.sizes for m in args.formats]
    jobs += [("naive-csv", s) for s in args.naive_sizes]
    for method, size in jobs:
        r = json.loads(_child("--measure", str(size), method, "--out", str(args.out)))
        ttfb = f"{r['ttfb']:.3f}" if r["ttfb"] is not None else "(end)"
        print(
            f"{method:<10} {r['rows']:>9} {r['seconds']:>8.1f} {r['rows'] / r['seconds']:>9.0f} "
            f"{ttfb:>7} {r['peak_rss_mib']:>12.0f} {r['bytes'] / 2**20:>8.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
