"""Row -> bytes writers for CSV, JSONL and Parquet. Each is a generator of byte chunks so the
caller can stream it (HTTP response, file) with flat memory.

Reproducibility: no timestamps, random ids or dict-order effects inside the data; floats are
written with repr (shortest exact round-trip form); datetimes as ISO 8601 in UTC.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from annotations.final_label_order import FinalLabelRow

FORMATS = ("csv", "jsonl", "parquet")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
BASE_COLUMNS = (
    "interaction_id",
    "drug_a",
    "drug_b",
    "description",
    "final_label",
    "source",
    "confidence",
    "model_version",
    "rule_id",
    "reviewer",
    "reviewed_at",
    "flagged_unclear",
    "label_source",
    "note",
    "source_file",
    "source_line",
    "import_id",
)
# JSONL only: every reviewer's answer and the adjudication (selectors/team.get_team_answers).
EMPTY_TEAM = {"reviews": [], "adjudication": None}
CHUNK_BYTES = 64 * 1024
PARQUET_ROW_GROUP = 50_000

# OWASP: a spreadsheet treats a cell starting with one of these as a formula (or DDE). The set
# is defusedcsv's (= + - @ | %) plus tab, CR and NUL, which defusedcsv does not cover.
_FORMULA_STARTS = ("=", "+", "-", "@", "|", "%", "\t", "\r", "\x00")


def columns_for(classes: Iterable[str]) -> list[str]:
    """The export columns: the fixed provenance columns, then one p_<class> per project class."""
    return [*BASE_COLUMNS, *(f"p_{name}" for name in classes)]


def neutralise_cell(value: str) -> str:
    """Prefix a formula-looking text cell with ' so spreadsheets show it as text."""
    if value and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def row_values(row: FinalLabelRow, n_classes: int) -> list:
    """The row's values in column order (Python types; None for missing)."""
    probabilities = row.probabilities if row.probabilities is not None else [None] * n_classes
    if len(probabilities) != n_classes:
        # A model version trained on another class list: don't mislabel the columns.
        probabilities = [None] * n_classes
    return [
        row.interaction_id,
        row.drug_a,
        row.drug_b,
        row.description,
        row.final_label,
        row.source,
        row.confidence,
        row.model_version,
        row.rule_id,
        row.reviewer,
        row.reviewed_at,
        row.flagged_unclear,
        row.label_source,
        row.note,
        row.source_file,
        row.source_line,
        row.import_id,
        *probabilities,
    ]


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, int):
        return str(value)
    return neutralise_cell(str(value))


def _chunked(lines: Iterable[str]) -> Iterator[bytes]:
    buffer, size = [], 0
    for line in lines:
        buffer.append(line)
        size += len(line)
        if size >= CHUNK_BYTES:
            yield "".join(buffer).encode("utf-8")
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode("utf-8")


def iter_csv(rows: Iterable[FinalLabelRow], classes: list[str]) -> Iterator[bytes]:
    """CSV (RFC 4180, CRLF line ends, UTF-8, header first) with formula cells neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")

    def lines() -> Iterator[str]:
        writer.writerow([neutralise_cell(c) for c in columns_for(classes)])
        for row in rows:
            writer.writerow([_csv_cell(v) for v in row_values(row, len(classes))])
            yield out.getvalue()
            out.seek(0)
            out.truncate()
        # The header goes out with the first row; an export without rows still gets it here.
        if out.tell():
            yield out.getvalue()

    return _chunked(lines())


def _batches(rows: Iterable[FinalLabelRow], size: int) -> Iterator[list[FinalLabelRow]]:
    batch: list[FinalLabelRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def iter_jsonl(
    rows: Iterable[FinalLabelRow],
    classes: list[str],
    team: Callable[[list[int]], dict[int, dict]] | None = None,
) -> Iterator[bytes]:
    """One JSON object per line, keys in column order, raw values (no CSV escaping).

    With `team` (interaction ids -> {"reviews": [...], "adjudication": ...}), each record also
    carries every reviewer's answer and the adjudication (looked up one batch of rows at a
    time, so memory stays flat).
    """
    names = columns_for(classes)

    def lines() -> Iterator[str]:
        for batch in _batches(rows, 1000):
            extra = team([row.interaction_id for row in batch]) if team else {}
            for row in batch:
                values = row_values(row, len(classes))
                record = {
                    name: _iso(v) if isinstance(v, datetime) else v
                    for name, v in zip(names, values, strict=True)
                }
                if team is not None:
                    record.update(extra.get(row.interaction_id, EMPTY_TEAM))
                yield json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"

    return _chunked(lines())


def parquet_schema(classes: list[str]) -> pa.Schema:
    fields = [
        ("interaction_id", pa.int64()),
        ("drug_a", pa.string()),
        ("drug_b", pa.string()),
        ("description", pa.string()),
        ("final_label", pa.string()),
        ("source", pa.string()),
        ("confidence", pa.float64()),
        ("model_version", pa.int64()),
        ("rule_id", pa.int64()),
        ("reviewer", pa.string()),
        ("reviewed_at", pa.timestamp("us", tz="UTC")),
        ("flagged_unclear", pa.bool_()),
        ("label_source", pa.string()),
        ("note", pa.string()),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        ("import_id", pa.int64()),
        *((f"p_{name}", pa.float64()) for name in classes),
    ]
    return pa.schema(fields)


class _Spool:
    """A write-only file object that keeps what pyarrow wrote until the generator drains it."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def drain(self) -> bytes:
        data = b"".join(self.parts)
        self.parts = []
        return data


def iter_parquet(
    rows: Iterable[FinalLabelRow],
    classes: list[str],
    row_group_size: int = PARQUET_ROW_GROUP,
    *,
    footer_metadata: Callable[[], dict[str, str]] | None = None,
) -> Iterator[bytes]:
    """Parquet written one row group at a time (memory ~ one row group), zstd-compressed.

    ``footer_metadata`` is called after the last row (so counts over the rows are complete) and
    its key/value pairs go into the file's footer (the dataset card, for one).
    """
    schema = parquet_schema(classes)
    names = schema.names
    spool = _Spool()
    writer = pq.ParquetWriter(spool, schema, compression="zstd")
    columns: list[list] = [[] for _ in names]

    def flush() -> bytes:
        table = pa.Table.from_arrays(
            [pa.array(values, type=schema.field(i).type) for i, values in enumerate(columns)],
            schema=schema,
        )
        writer.write_table(table, row_group_size=row_group_size)
        for values in columns:
            values.clear()
        return spool.drain()

    # The writer has already written the 4-byte magic: send it now, so the download starts
    # (first byte, proxies' read timeouts reset) before the first row group is built.
    finished = False
    try:
        yield spool.drain()
        for row in rows:
            for values, value in zip(columns, row_values(row, len(classes)), strict=True):
                values.append(value)
            if len(columns[0]) >= row_group_size:
                yield flush()
        if columns[0]:
            yield flush()
        if footer_metadata is not None:
            writer.add_key_value_metadata(footer_metadata())
        writer.close()  # writes the footer
        finished = True
    finally:
        if not finished:
            writer.close()
    yield spool.drain()


WRITERS: dict[str, Callable[..., Iterator[bytes]]] = {
    "csv": iter_csv,
    "jsonl": iter_jsonl,
    "parquet": iter_parquet,
}
