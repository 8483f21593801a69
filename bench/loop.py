"""The loop, measured: do a few reviews, chosen well, turn a rough model into near-perfect labels?

From an EMPTY database (its own PostgreSQL database `ddi_bench_loop_base` on 127.0.0.1; a SQLite
file in a temp folder if PostgreSQL is unreachable): import the 7,073-row DrugBank sample and the
192 seed labels, train, pseudo-label, all through the app's services. That round-0 state is then
cloned once per strategy (`CREATE DATABASE ... TEMPLATE`), so every strategy starts from the same
trained model. Each strategy then runs R rounds (annotations/services/loop.py): take K items in
the strategy's order, answer them with the reference labeler through the label service, retrain
through the run service (the promotion rule applies), pseudo-label with the new version if it was
promoted. After every round the FINAL labels (review > seed > rule > model) of all rows are
scored against tests/data/drugbank_reference_patterns.csv (``--data full``: the 192,284-row
set against tests/data/drugbank_full_reference_patterns.csv, 86 patterns).

Strategies: `default` (the review queue page exactly as the app orders it: lowest confidence
first with at most a few rows per sentence pattern), `lowest-confidence` (the same selector in
strict order, as "Start reviewing" hands items out), `random` (seeded uniform sample).

    .venv/bin/python bench/loop.py [--data sample|full] [--rounds 3] [--per-round 20]
        [--strategies default,random,lowest-confidence] [--backbone NAME] [--epochs N] [--keep]

Smoke run: ``--backbone tiny-random-bert --rounds 1``. Writes bench/out/loop.png and loop.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._measure import DATA, OUT, REFERENCE_CSV, REPO, SAMPLE_CSV, SEED_CSV, print_table

PG = "postgres://postgres@127.0.0.1:5432/"
PG_ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"
BASE = "ddi_bench_loop_base"
TARGET = 0.995
# --data: the interactions imported and the per-pattern reference they are scored against.
DATASETS = {
    "sample": (SAMPLE_CSV, REFERENCE_CSV),
    "full": (
        DATA / "drugbank_ddi_full.csv",
        REPO / "tests" / "data" / "drugbank_full_reference_patterns.csv",
    ),
}


def _postgres_up() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except Exception:  # any failure means "use SQLite"
        return False


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


class Databases:
    """Creates the base database, clones it per strategy, switches Django between them."""

    def __init__(self, workdir: Path):
        self.postgres = _postgres_up()
        self.workdir = workdir
        self.created: list[str] = []

    def base_url(self) -> str:
        if self.postgres:
            _admin(f"DROP DATABASE IF EXISTS {BASE} WITH (FORCE)")
            _admin(f"CREATE DATABASE {BASE}")
            self.created.append(BASE)
            return PG + BASE
        return f"sqlite:///{self.workdir / (BASE + '.sqlite3')}"

    def clone(self, strategy: str) -> str:
        """Copy the base database for `strategy` (Django must not hold a connection to it)."""
        name = f"ddi_bench_loop_{strategy.replace('-', '_')}"
        if self.postgres:
            _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            _admin(f"CREATE DATABASE {name} TEMPLATE {BASE}")
            self.created.append(name)
            return PG + name
        target = self.workdir / f"{name}.sqlite3"
        shutil.copyfile(self.workdir / f"{BASE}.sqlite3", target)
        return f"sqlite:///{target}"

    def drop_all(self) -> None:
        from django.db import connections

        connections.close_all()
        for name in self.created:
            _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def prepare_round_zero(params: dict, data: str) -> dict:
    """Import the data set + seeds, train, pseudo-label (the app's services). Returns timings."""
    from annotations.models import DEFAULT_PROJECT_NAME, ModelVersion, Project, Run
    from annotations.services.importing import ColumnMapping, import_interactions
    from annotations.services.jobs.inline import run_job_inline
    from annotations.services.jobs.starting import start_pseudolabel_run, start_train_run

    project = Project.objects.get(name=DEFAULT_PROJECT_NAME)
    timings = {}
    started = time.perf_counter()
    import_interactions(project=project, path=DATASETS[data][0], mapping=ColumnMapping())
    outcome = import_interactions(
        project=project, path=SEED_CSV, mapping=ColumnMapping(label="label")
    )
    timings["import_s"] = time.perf_counter() - started
    print(
        f"imported {project.interactions.count()} interactions, "
        f"{outcome.job.labels_created} seed labels ({timings['import_s']:.1f} s)"
    )
    started = time.perf_counter()
    run = run_job_inline(run_id=start_train_run(project=project, params=params, enqueue=False).pk)
    if run.state != Run.State.SUCCEEDED:
        raise SystemExit(f"initial training failed: {run.error}")
    timings["train_s"] = time.perf_counter() - started
    version = ModelVersion.objects.get(project=project, is_active=True)
    print(
        f"trained v{version.number} on {version.n_train_examples} labels: validation macro-F1 "
        f"{version.metrics.get('macro_f1'):.3f} ({timings['train_s']:.1f} s)"
    )
    started = time.perf_counter()
    run = start_pseudolabel_run(project=project, model_version=version, enqueue=False)
    run = run_job_inline(run_id=run.pk)
    if run.state != Run.State.SUCCEEDED:
        raise SystemExit(f"pseudo-labeling failed: {run.error}")
    timings["pseudolabel_s"] = time.perf_counter() - started
    print(f"pseudo-labeled {run.progress_done} rows ({timings['pseudolabel_s']:.1f} s)")
    return timings


def run_strategy(strategy: str, args, params: dict, artifacts: Path) -> list[dict]:
    """Run one strategy on the current database; rounds as JSON-ready dicts."""
    from annotations.models import DEFAULT_PROJECT_NAME, Project
    from annotations.simulation import load_reference_csv, simulate

    project = Project.objects.get(name=DEFAULT_PROJECT_NAME)
    reference = load_reference_csv(path=DATASETS[args.data][1], project=project)

    def report(result) -> None:
        t = result.training
        trained = (
            f"v{t.version} {'promoted' if t.promoted else 'NOT promoted'} "
            f"(val macro-F1 {t.macro_f1:.3f}), active v{t.active_version}"
            if t
            else "round-0 model"
        )
        print(
            f"  {strategy:<18} round {result.round}: {result.reviews:>3} reviews  accuracy "
            f"{result.score.accuracy:.4f}  macro-F1 {result.score.macro_f1:.4f}  wrong "
            f"{result.score.wrong:>4}  [{trained}]  {time.strftime('%H:%M:%S')}",
            flush=True,
        )

    rounds = simulate(
        project=project,
        strategy=strategy,
        rounds=args.rounds,
        per_round=args.per_round,
        reference=reference,
        params=params,
        seed=args.seed,
        on_round=report,
        artifacts_dir=artifacts / strategy,
    )
    return [
        {
            "round": r.round,
            "reviews": r.reviews,
            "skipped": r.skipped,
            "accuracy": r.score.accuracy,
            "macro_f1": r.score.macro_f1,
            "wrong": r.score.wrong,
            "rows": r.score.rows,
            "per_pattern": r.score.per_pattern,
            "training": None if r.training is None else dict(r.training.__dict__),
        }
        for r in rounds
    ]


def strategy_worker(args, params: dict) -> None:
    """Child process: one strategy on its cloned database; results to --result-file."""
    import django

    django.setup()
    rounds = run_strategy(args.run_strategy, args, params, Path(args.artifacts))
    Path(args.result_file).write_text(json.dumps(rounds))


def run_strategies(strategies, args, databases: Databases, workdir: Path) -> dict[str, list]:
    """One child process per strategy on its own clone, at most --jobs at a time."""
    pending = list(strategies)
    running: dict[str, subprocess.Popen] = {}
    results: dict[str, list] = {}
    forwarded = ["--rounds", str(args.rounds), "--per-round", str(args.per_round)]
    forwarded += ["--seed", str(args.seed), "--data", args.data]
    if args.backbone:
        forwarded += ["--backbone", args.backbone]
    if args.epochs:
        forwarded += ["--epochs", str(args.epochs)]
    while pending or running:
        while pending and len(running) < args.jobs:
            strategy = pending.pop(0)
            env = {**os.environ, "DATABASE_URL": databases.clone(strategy)}
            command = [sys.executable, __file__, "--run-strategy", strategy, *forwarded]
            command += ["--artifacts", str(workdir / "models")]
            command += ["--result-file", str(workdir / f"{strategy}.json")]
            running[strategy] = subprocess.Popen(command, env=env)
        time.sleep(1)
        for strategy, process in list(running.items()):
            if process.poll() is None:
                continue
            del running[strategy]
            if process.returncode != 0:
                raise SystemExit(f"strategy {strategy} failed (exit {process.returncode})")
            results[strategy] = json.loads((workdir / f"{strategy}.json").read_text())
    return {s: results[s] for s in strategies}


def plot(results: dict[str, list], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    markers = ["o", "s", "^", "D"]
    for n, (strategy, rounds) in enumerate(results.items()):
        # A small x offset per strategy keeps identical curves visible instead of hidden.
        xs = [r["reviews"] + 0.4 * (n - 1) for r in rounds]
        ys = [100 * r["accuracy"] for r in rounds]
        ax.plot(xs, ys, marker=markers[n % len(markers)], label=strategy, alpha=0.85)
    ax.axhline(100 * TARGET, color="grey", linestyle="--", linewidth=1, label="target 99.5%")
    ax.set_xticks(sorted({r["reviews"] for rounds in results.values() for r in rounds}))
    ax.set_xlabel("simulated reviews")
    ax.set_ylabel("final-label row accuracy (%), all rows")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def print_pattern_table(results: dict[str, list]) -> None:
    """Wrong rows per sentence pattern (patterns wrong at some point), per strategy and round."""
    patterns: dict[str, tuple[int, str]] = {}
    for rounds in results.values():
        for r in rounds:
            for text, (rows, correct, expected, _) in r["per_pattern"].items():
                if correct < rows:
                    patterns[text] = (rows, expected)
    if not patterns:
        print("\nevery pattern fully right at every round")
        return
    headers = ["pattern", "rows", "ref"]
    for strategy, rounds in results.items():
        headers += [f"{strategy[:6]} r{r['round']}" for r in rounds]
    table = []
    for text, (rows, expected) in sorted(patterns.items(), key=lambda p: -p[1][0]):
        line: list[object] = [text[:60], rows, expected[:5]]
        for rounds in results.values():
            for r in rounds:
                n, ok, _, _ = r["per_pattern"][text]
                line.append(n - ok)
        table.append(line)
    print("\nwrong rows per sentence pattern (only patterns wrong at some round):")
    print_table(headers, table)


def _model_cell(training: dict | None) -> str:
    if training is None:
        return "v1"
    if training["promoted"]:
        return f"v{training['version']}"
    return f"v{training['version']} not promoted, v{training['active_version']} kept"


def print_summary(results: dict[str, list], args) -> None:
    rows = [
        [
            strategy,
            r["round"],
            r["reviews"],
            f"{100 * r['accuracy']:.2f}%",
            f"{r['macro_f1']:.4f}",
            r["wrong"],
            _model_cell(r["training"]),
        ]
        for strategy, rounds in results.items()
        for r in rounds
    ]
    print_table(
        ["strategy", "round", "reviews", "accuracy", "macro-F1", "wrong rows", "model"], rows
    )
    print_pattern_table(results)
    default = results.get("default")
    if default:
        reached = next((r for r in default if r["accuracy"] >= TARGET), None)
        verdict = f"reached at round {reached['round']}" if reached else "NOT reached"
        print(f"\ntarget >= {100 * TARGET:.1f}% within {args.rounds} rounds: {verdict}")
        if "random" in results:
            below = [
                d["round"]
                for d, r in zip(default, results["random"], strict=True)
                if d["accuracy"] < r["accuracy"]
            ]
            print("default below random at rounds: " + (", ".join(map(str, below)) or "none"))


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--data",
        choices=sorted(DATASETS),
        default="sample",
        help="sample: 7,073 rows, 43 patterns; full: the 192,284-row DrugBank set, 86 patterns",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--strategies", default="default,random,lowest-confidence")
    parser.add_argument("--backbone", help="default: the app's DDI_BACKBONE")
    parser.add_argument("--epochs", type=int, help="default: TrainConfig's")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random strategy")
    parser.add_argument(
        "--jobs", type=int, default=1, help="strategies run at once (one process each)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench databases")
    # Internal: the child process of one strategy.
    parser.add_argument("--run-strategy", help=argparse.SUPPRESS)
    parser.add_argument("--artifacts", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    params = {k: v for k, v in {"backbone": args.backbone, "epochs": args.epochs}.items() if v}
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ddi_site.settings")
    if args.run_strategy:
        strategy_worker(args, params)
        return
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="ddi-bench-loop-"))
    databases = Databases(workdir)
    os.environ["DATABASE_URL"] = databases.base_url()
    os.environ["DDI_ARTIFACTS_DIR"] = str(workdir / "models" / "base")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    from annotations.simulation import STRATEGIES

    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        raise SystemExit(f"unknown strategies {sorted(unknown)} (known: {', '.join(STRATEGIES)})")
    backbone = args.backbone or settings.DDI_BACKBONE
    print(
        f"database: {'PostgreSQL' if databases.postgres else 'SQLite'}; backbone {backbone}; "
        f"epochs {args.epochs or 'default'}; work folder {workdir}",
        flush=True,
    )
    started = time.perf_counter()
    try:
        call_command("migrate", verbosity=0)
        timings = prepare_round_zero(params, args.data)
        connections.close_all()  # a template database must have no open connection
        t0 = time.perf_counter()
        results = run_strategies(strategies, args, databases, workdir)
        timings["strategies_s"] = time.perf_counter() - t0
    finally:
        if not args.keep and databases.postgres:
            databases.drop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    total = time.perf_counter() - started
    print(
        f"\ndata {args.data}; backbone {backbone}, epochs {args.epochs or 'default'}; "
        f"{args.rounds} rounds x "
        f"{args.per_round} reviews; {results[strategies[0]][0]['rows']} rows scored; "
        f"total {total / 60:.1f} min ({args.jobs} strategies at a time)"
    )
    print_summary(results, args)
    OUT.mkdir(parents=True, exist_ok=True)
    name = "loop" if args.data == "sample" else f"loop-{args.data}"
    plot(results, OUT / f"{name}.png", f"{args.data}: {backbone}, {args.per_round} reviews/round")
    payload = {
        "data": args.data,
        "backbone": backbone,
        "epochs": args.epochs,
        "rounds": args.rounds,
        "per_round": args.per_round,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "results": results,
    }
    (OUT / f"{name}.json").write_text(json.dumps(payload, indent=2))
    print(f"wrote {OUT / (name + '.png')} and {OUT / (name + '.json')}")


if __name__ == "__main__":
    main()
