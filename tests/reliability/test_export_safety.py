"""Scenario 11: export safety and fidelity through the API (CSV / JSONL / Parquet).

Hostile cells (formula triggers, a HYPERLINK, Unicode, quotes, commas, newlines) go into drug
names, descriptions and label classes. CSV neutralises formula cells with a leading ' and still
parses back to the same rows; JSONL and Parquet return the database values byte for byte. A
large export streams from a real gunicorn process: first byte fast, worker memory flat.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import threading
import time

import psutil
import pyarrow.parquet as pq
import pytest
import requests
from rest_framework.test import APIClient

from annotations.models import Interaction, Label
from annotations.tokens import issue_token
from tests.factories import InteractionFactory, ProjectFactory
from tests.reliability.conftest import LONG, on_postgres

TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\x00")
HOSTILE = [
    "=1+1",
    "+SUM(A1:A2)",
    "-2+3",
    "@cmd",
    "\tindented",
    "\rcarriage",
    "\x00nul",
    '=HYPERLINK("http://127.0.0.1/x","a")',
    "Ünïcödé — 药物 🧪 \u202eRTL",
    'He said "yes", then, "no"',
    "line one\nline two\r\nline three",
    "plain text",
]


def _storable(text: str) -> str:
    # PostgreSQL text columns cannot hold NUL (the importer strips it); SQLite can.
    return text.replace("\x00", "\\0") if on_postgres() else text


@pytest.fixture
def hostile_project(db, curator_carl):
    payloads = [_storable(p) for p in HOSTILE]
    project = ProjectFactory(name="Hostile export", label_classes=[*payloads[:4], "Plain"])
    for n, text in enumerate(payloads):
        interaction = InteractionFactory(
            project=project,
            drug_a=text,
            drug_b=f"{text}-b{n}",
            description=f"{text}",
        )
        Label.objects.create(
            interaction=interaction,
            label_class=project.label_classes[n % len(project.label_classes)],
            source=Label.Source.SEED,
        )
    return project


def _export(user, project, fmt):
    client = APIClient()
    client.force_authenticate(user)
    return client.get(f"/api/projects/{project.pk}/export/?file_format={fmt}")


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def _db_rows(project) -> list[dict]:
    return [
        {
            "interaction_id": i.pk,
            "drug_a": i.drug_a,
            "drug_b": i.drug_b,
            "description": i.description,
            "final_label": i.label.label_class,
        }
        for i in Interaction.objects.filter(project=project).select_related("label").order_by("pk")
    ]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_exports_are_attachments_with_nosniff(hostile_project, curator_carl, fmt):
    response = _export(curator_carl, hostile_project, fmt)

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert _body(response)


def test_a_reviewer_cannot_export(hostile_project, reviewer_rita):
    for fmt in ("csv", "jsonl", "parquet"):
        assert _export(reviewer_rita, hostile_project, fmt).status_code == 403


def test_csv_neutralises_every_formula_cell_and_parses_back_to_the_same_rows(
    hostile_project, curator_carl
):
    text = _body(_export(curator_carl, hostile_project, "csv")).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    expected = _db_rows(hostile_project)

    assert len(rows) == len(expected)
    for row, db in zip(rows, expected, strict=True):
        for column in ("drug_a", "drug_b", "description", "final_label"):
            value = db[column]
            if value.startswith(TRIGGERS) or value.startswith(("|", "%")):
                assert row[column] == "'" + value, column
            else:
                assert row[column] == value, column
    # No cell of the whole file starts with a trigger character.
    for row in csv.reader(io.StringIO(text, newline="")):
        assert not any(cell.startswith(TRIGGERS) for cell in row), row


def _assert_byte_exact(records: list[dict], expected: list[dict]) -> None:
    assert len(records) == len(expected)
    for record, db in zip(records, expected, strict=True):
        for column, value in db.items():
            assert record[column] == value
            if isinstance(value, str):
                assert record[column].encode("utf-8") == value.encode("utf-8")


def test_jsonl_round_trips_byte_exact(hostile_project, curator_carl):
    lines = _body(_export(curator_carl, hostile_project, "jsonl")).decode("utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    expected = _db_rows(hostile_project)

    _assert_byte_exact(records, expected)


def test_parquet_round_trips_byte_exact(hostile_project, curator_carl):
    table = pq.read_table(io.BytesIO(_body(_export(curator_carl, hostile_project, "parquet"))))
    records = table.to_pylist()
    expected = _db_rows(hostile_project)

    _assert_byte_exact(records, expected)


# --- Streaming a large export from a real server --------------------------------------------
STREAM_ROWS = 100_000 if LONG else 20_000
# Flat: bounded by one Parquet row group (50k rows) / one 64 KiB CSV chunk, whatever the row
# count; buffering a 100k-row export would need several hundred MB of Python objects.
RSS_GROWTH_LIMIT = (120 if LONG else 80) * 1024 * 1024


def _seed_many(project, n: int) -> None:
    batch = []
    for i in range(n):
        text = f'=Drug{i} may increase the activities of Other{i}, "quoted".'
        batch.append(
            Interaction(
                project=project,
                drug_a=f"Drug{i}",
                drug_b=f"Other{i}",
                description=text,
                blinded_text="DRUG_A may increase the activities of DRUG_B.",
                pattern_hash="p",
                content_hash=f"c{i}",
            )
        )
        if len(batch) == 5000:
            Interaction.objects.bulk_create(batch)
            batch = []
    Interaction.objects.bulk_create(batch)
    Label.objects.bulk_create(
        [
            Label(interaction_id=pk, label_class="Synergistic", source=Label.Source.SEED)
            for pk in Interaction.objects.filter(project=project).values_list("pk", flat=True)
        ],
        batch_size=5000,
    )


def _sample_rss(pids: list[int], stop: threading.Event, peaks: dict) -> None:
    processes = [psutil.Process(pid) for pid in pids]
    while not stop.is_set():
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                peaks[process.pid] = max(peaks.get(process.pid, 0), process.memory_info().rss)
        time.sleep(0.02)


@pytest.mark.e2e
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_large_export_streams_with_a_fast_first_byte_and_flat_memory(
    live_gunicorn, curator_carl, fmt
):
    project = ProjectFactory(name="Big export")
    _seed_many(project, STREAM_ROWS)
    token = issue_token(curator_carl)
    server = live_gunicorn(workers=1, threads=1)
    headers = {"Authorization": f"Token {token}"}
    url = f"{server.url}/api/projects/{project.pk}/export/?file_format={fmt}"
    # Warm up (imports, connection, pyarrow): the baseline is a worker that served an export.
    small = ProjectFactory(name="Small export")
    _seed_many(small, 10)
    warm = requests.get(
        f"{server.url}/api/projects/{small.pk}/export/?file_format={fmt}",
        headers=headers,
        timeout=60,
    )
    assert warm.status_code == 200, server.tail()
    (pid,) = server.worker_pids()
    baseline = psutil.Process(pid).memory_info().rss

    stop, peaks = threading.Event(), {}
    sampler = threading.Thread(target=_sample_rss, args=([pid], stop, peaks))
    sampler.start()
    try:
        started = time.monotonic()
        with requests.get(url, headers=headers, stream=True, timeout=300) as response:
            chunks = response.iter_content(64 * 1024)
            first = next(chunks)
            ttfb = time.monotonic() - started
            size = len(first) + sum(len(chunk) for chunk in chunks)
        total = time.monotonic() - started
    finally:
        stop.set()
        sampler.join()

    growth = peaks[pid] - baseline
    print(
        f"export {fmt} {STREAM_ROWS} rows: {size / 1e6:.1f} MB, TTFB {ttfb:.2f}s, "
        f"total {total:.1f}s, worker RSS {baseline / 1e6:.0f} MB + {growth / 1e6:.1f} MB"
    )
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert ttfb < 2.0
    assert growth < RSS_GROWTH_LIMIT
