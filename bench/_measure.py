"""Shared measuring helpers for the benchmarks: paths to the data, peak RSS, timing."""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("DDI_DATA_DIR", REPO.parent / "shared" / "data"))
SAMPLE_CSV = DATA / "drugbank_ddi_sample.csv"
SEED_CSV = DATA / "drugbank_ddi_seed_labels.csv"
REFERENCE_CSV = REPO / "tests" / "data" / "drugbank_reference_patterns.csv"
OUT = REPO / "bench" / "out"

T = TypeVar("T")


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def timed(function: Callable[[], T]) -> tuple[T, float]:
    """(result, seconds) of calling ``function`` once."""
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    """A plain fixed-width table on stdout."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
        if n == 0:
            print("  ".join("-" * w for w in widths))
