"""The DDI-2013 bench's budget run (`bench/ddi2013.py --budget`): the real corpus, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from _measure import DATA  # noqa: E402

CORPUS = DATA / "ddi2013_pairs.csv"


@pytest.mark.slow
def test_the_budget_run_trains_scores_and_reports_speed_beside_the_baseline(tmp_path):
    if not CORPUS.is_file():
        pytest.fail(f"the DDI-2013 corpus is missing: {CORPUS} (see ../shared/data/SOURCES.md)")
    out = tmp_path / "ddi2013.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "ddi2013.py"), "--budget", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,  # a hang guard, not a speed goal (the budget run is ~3 CPU-minutes)
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["train_pairs"] == 1200 and report["test_pairs"] == 600
    scores = report["scores"]
    assert set(scores["per_class"]) == {"mechanism", "effect", "advise", "int"}
    assert 0.0 <= scores["micro"]["f1"] <= 1.0
    # Every test pair is scored: kept ones by the model, filtered ones as negative.
    matrix = report["confusion_matrix"]["rows_true"]
    assert sum(map(sum, matrix)) == 600
    # The filter's report counts what each rule removed and the positives among them.
    train_filter = report["filter"]["train"]
    assert train_filter["pairs"] == 27792
    assert sum(train_filter["removed"].values()) == train_filter["pairs"] - train_filter["kept"]
    assert train_filter["positives_removed"] == sum(train_filter["positives"].values())
    speed = report["speed"]
    assert speed["baseline"]["examples"] > 0 and speed["baseline"]["cpu_s"] > 0
    assert speed["ours_examples_per_s"] > 0 and speed["fp32_limit_examples_per_s"] > 0
    assert min(speed["matmul_gflops"]["float32"]) > 0  # (per second, per CPU-second)
    for table in ("true \\ predicted", "micro (4 positive classes)", "baseline: transformers"):
        assert table in done.stdout
    # The confidence issue's row: fitted on the dev split, scored on the kept test pairs.
    calibration = report["calibration"]
    assert calibration["dev"]["pairs"] == report["dev_pairs"]
    assert calibration["test"]["pairs"] == 600 - report["test_filtered"]
    assert calibration["temperature"] > 0
    for method in ("raw", "temperature", "app"):
        assert 0.0 <= calibration["test"][method]["ece"] <= 1.0
        assert 0.0 <= calibration["test"][method]["error_auroc"] <= 1.0
    for line in ("raw softmax top probability", "temperature T=", "app confidence model"):
        assert line in done.stdout
