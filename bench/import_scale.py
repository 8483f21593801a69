"""Import at scale: rows/s and peak RSS of `manage.py import_interactions` for growing files.

Generates synthetic DrugBank-style CSVs (the 86 sentence templates of the full DrugBank set with
random drug names) of 100,000 and 1,000,000 rows, imports each into a fresh PostgreSQL database,
and prints time, rows/s and the importer's peak RSS side by side with a naive baseline (pandas
reads the whole file, one bulk_create of everything) on the smaller sizes. Flat RSS across sizes
is the claim under test. Needs PostgreSQL on 127.0.0.1 and ../shared.

    python bench/import_scale.py [--sizes 100000 1000000] [--naive-sizes 100000 200000]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PG = "postgres://postgres@127.0.0.1:5432/"
DB = "ddi_bench_import"

NAIVE = """
import pandas as pd, hashlib
from annotations.models import Interaction, Project
from modeling.blinding import blind
project = Project.objects.get(name="DrugBank DDI")
frame = pd.read_csv({path!r})
rows = []
for a, b, d in frame[["Drug 1", "Drug 2", "Interaction Description"]].itertuples(index=False):
    t = blind(d, a, b)
    rows.append(Interaction(project=project, drug_a=a, drug_b=b, description=d, blinded_text=t,
        pattern_hash=hashlib.sha256(t.encode()).hexdigest(),
        content_hash=hashlib.sha256(chr(31).join((a, b, d)).encode()).hexdigest()))
Interaction.objects.bulk_create(rows, ignore_conflicts=True)
"""


def templates() -> list[str]:
    """The sentence patterns of the full set, with {a}/{b} slots."""
    seen: dict[str, None] = {}
    with (SHARED / "drugbank_ddi_full.csv").open() as handle:
        for a, b, text, *_ in csv.reader(handle):
            if a and b and a != b and a in text and b in text:
                seen.setdefault(text.replace(a, "{a}").replace(b, "{b}"), None)
    return [
        t
        for t in seen
        if "{a}" in t
        and "{b}" in t
        and not re.search(r"[{}]", t.replace("{a}", "").replace("{b}", ""))
    ]


def generate(path: Path, rows: int, patterns: list[str]) -> None:
    rng = random.Random(rows)
    syllables = ["ami", "bro", "cet", "dal", "efo", "fen", "gli", "hex", "ido", "lor", "mab", "nib"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Drug 1", "Drug 2", "Interaction Description"])
        for i in range(rows):
            a = "".join(rng.choices(syllables, k=3)).capitalize() + f"ine{i}"
            b = "".join(rng.choices(syllables, k=3)).capitalize() + f"ol{i}"
            writer.writerow([a, b, rng.choice(patterns).format(a=a, b=b)])


def fresh_database() -> str:
    for sql in (f"DROP DATABASE IF EXISTS {DB}", f"CREATE DATABASE {DB}"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)
    env = {**os.environ, "DATABASE_URL": PG + DB}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    return PG + DB


def measure(command: list[str], database_url: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a child process, sampled every 50 ms."""
    env = {**os.environ, "DATABASE_URL": database_url}
    start = time.perf_counter()
    child = psutil.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    peak = 0
    while child.poll() is None:
        try:
            peak = max(peak, child.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    if child.returncode != 0:
        raise SystemExit(child.stderr.read().decode()[-2000:])
    return time.perf_counter() - start, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--naive-sizes", type=int, nargs="*", default=[100_000, 200_000])
    args = parser.parse_args()
    patterns = templates()
    print(f"{len(patterns)} sentence templates from drugbank_ddi_full.csv")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sorted(set(args.sizes) | set(args.naive_sizes)):
            path = Path(tmp) / f"synthetic_{rows}.csv"
            generate(path, rows, patterns)
            if rows in args.sizes:
                url = fresh_database()
                cmd = [sys.executable, "manage.py", "import_interactions", str(path)]
                seconds, rss = measure(cmd, url)
                results.append(("streaming import (ours)", rows, seconds, rss))
            if rows in args.naive_sizes:
                url = fresh_database()
                code = NAIVE.format(path=str(path))
                seconds, rss = measure([sys.executable, "manage.py", "shell", "-c", code], url)
                results.append(("naive: pandas + one bulk_create", rows, seconds, rss))
            path.unlink()
    print(f"\n{'method':34} {'rows':>10} {'seconds':>9} {'rows/s':>9} {'peak RSS MiB':>13}")
    for method, rows, seconds, rss in results:
        print(f"{method:34} {rows:>10,} {seconds:>9.1f} {rows / seconds:>9,.0f} {rss:>13,.0f}")


if __name__ == "__main__":
    main()
