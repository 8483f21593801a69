"""Generated input files for the import/upload reliability tests (no committed binaries)."""

from __future__ import annotations

import csv
import io
import os
import zipfile
from pathlib import Path

# Long variants (`make chaos` sets DDI_CHAOS_LONG=1): the same tests with bigger sizes.
LONG = os.environ.get("DDI_CHAOS_LONG") == "1"

HEADER = ["Drug 1", "Drug 2", "Interaction Description"]
CLASSES = ("Synergistic", "Antagonistic")


def interaction_row(i: int) -> list[str]:
    """A valid, unique row: both drugs are named in the description."""
    a, b = f"Drugamab{i}", f"Otherzole{i}"
    verb = "increase" if i % 2 else "decrease"
    return [a, b, f"{a} may {verb} the anticoagulant activities of {b}."]


def csv_bytes(rows: list[list[str]], header: list[str] = HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def write_interactions_csv(
    path: Path, n: int, *, labels: bool = False, bad_line: int | None = None, start: int = 0
) -> Path:
    """n rows (header on line 1); `bad_line` (a physical line number) gets 5 columns."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*HEADER, "label"] if labels else HEADER)
        for i in range(start, start + n):
            row = interaction_row(i)
            if labels:
                row.append(CLASSES[i % 2])
            if bad_line is not None and i - start + 2 == bad_line:
                row = [*row[:3], "extra", "columns"]
            writer.writerow(row)
    return path


def reorder_columns(data: bytes, order: list[int]) -> bytes:
    """The same rows with the columns (header included) in another order."""
    rows = list(csv.reader(io.StringIO(data.decode())))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([[row[i] for i in order] for row in rows])
    return out.getvalue().encode()


def zip_bomb(expanded_bytes: int) -> bytes:
    """A small zip whose one member would expand to `expanded_bytes` of a CSV-looking line."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        member = zf.open("ddi.csv", "w", force_zip64=True)
        block = b"a" * (1 << 20)
        for _ in range(expanded_bytes >> 20):
            member.write(block)
        member.close()
    return buffer.getvalue()
