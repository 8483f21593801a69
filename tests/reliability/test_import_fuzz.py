"""Scenario 9: the import parser under fuzzing and a hostile-file corpus.

Property tests (Hypothesis; derandomized in CI, random and bigger with DDI_CHAOS_LONG=1): valid
rows survive serialize -> parse unchanged; arbitrary bytes give rows/row issues or an
ImportFormatError, never another exception, within a time bound. The corpus (generated here, no
committed binaries) goes through the real upload endpoint: 201 or 400 with a clear message,
never 500. A 200 MB single-line file is imported by a `manage.py` subprocess whose peak RSS is
measured: it must fail fast without reading the line into memory.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from annotations.exceptions import ImportFormatError, ImportIssue
from annotations.models import Interaction
from annotations.services import parsing
from tests.factories import ProjectFactory
from tests.reliability.input_files import HEADER, LONG, csv_bytes, interaction_row, zip_bomb

ROOT = Path(__file__).resolve().parents[2]
MAX_FIELD = 64 * 1024
FUZZ = settings(
    max_examples=3000 if LONG else 300,
    derandomize=not LONG,
    deadline=1000,  # ms per input: the parser must never go quadratic
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
FIGURES: dict[str, int] = {"fuzz_inputs": 0}


def parse_bytes(data: bytes, name: str = "fuzz.csv") -> tuple[list[str], list]:
    """What the importer does with a file before validating rows (importing.job._import_rows)."""
    raw = io.BytesIO(data)
    head = raw.read(8192)
    encoding = parsing.check_not_binary(name, head)
    file_format = parsing.detect_format(Path(name), head)
    raw.seek(0)
    lines = parsing.LineReader(raw, file_name=name, encoding=encoding, max_line_chars=4 * MAX_FIELD)
    if file_format == "jsonl":
        header, rows = parsing.read_jsonl(lines, file_name=name, max_field_chars=MAX_FIELD)
    else:
        delimiter = "\t" if file_format == "tsv" else ","
        header, rows = parsing.read_delimited(
            lines, file_name=name, delimiter=delimiter, max_field_chars=MAX_FIELD
        )
    return header, list(rows)


# --- properties -----------------------------------------------------------------------------------

field_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
)
valid_rows = st.lists(
    st.lists(field_text, min_size=3, max_size=3).filter(lambda row: any(v.strip() for v in row)),
    min_size=1,
    max_size=20,
)


@pytest.mark.chaos
@FUZZ
@given(
    rows=valid_rows, delimiter=st.sampled_from([",", "\t"]), newline=st.sampled_from(["\n", "\r\n"])
)
def test_valid_rows_survive_serialize_then_parse(rows, delimiter, newline):
    FIGURES["fuzz_inputs"] += 1
    out = io.StringIO()
    # With "\n" line ends Python's writer leaves a field ending in a lone "\r" unquoted (an
    # ambiguous file: `0\r\n` is "0" + CRLF); quote everything there.
    quoting = csv.QUOTE_MINIMAL if newline == "\r\n" else csv.QUOTE_ALL
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline, quoting=quoting)
    writer.writerow(HEADER)
    writer.writerows(rows)
    name = "rows.tsv" if delimiter == "\t" else "rows.csv"

    header, records = parse_bytes(out.getvalue().encode(), name)

    assert header == HEADER
    issues = [r for r in records if isinstance(r, ImportIssue)]
    assert not issues, (issues, out.getvalue())
    assert [[r.fields[h] for h in HEADER] for r in records] == rows


TOKENS = [
    b'"',
    b",",
    b"\t",
    b"\n",
    b"\r",
    b"\r\n",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xef\xbb\xbf",
    b"{",
    b"}",
    b'{"a": 1}',
    b"[",
    b"a",
    b"Drug 1",
    b" ",
    b"\\",
    b"'",
    b"\xe2\x80\xae",
]
hostile_bytes = st.one_of(
    st.binary(max_size=3000),
    st.lists(st.sampled_from(TOKENS), max_size=400).map(b"".join),
    st.builds(
        lambda head, body: head + body,
        st.sampled_from(
            [b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, b"Drug 1,Drug 2,Interaction Description\n"]
        ),
        st.lists(st.sampled_from(TOKENS), max_size=200).map(b"".join),
    ),
)


@pytest.mark.chaos
@FUZZ
@given(data=hostile_bytes, name=st.sampled_from(["x.csv", "x.tsv", "x.jsonl", "x.txt", "x"]))
def test_arbitrary_bytes_parse_or_raise_a_format_error_only(data, name):
    FIGURES["fuzz_inputs"] += 1
    try:
        header, records = parse_bytes(data, name)
    except ImportFormatError as exc:
        assert exc.issues and all(isinstance(i, ImportIssue) for i in exc.issues)
        assert all(i.message for i in exc.issues)
        return
    assert all(isinstance(h, str) for h in header)
    for record in records:
        assert isinstance(record, parsing.Record | ImportIssue)


# --- the hostile corpus through the real upload endpoint ------------------------------------------


def _good(n: int = 3) -> bytes:
    return csv_bytes([interaction_row(i) for i in range(n)])


def _rows_text(rows: list[list[str]]) -> str:
    return csv_bytes(rows).decode()


def corpus() -> list[tuple[str, bytes, int, str]]:
    """(file name, content, expected status, text the answer must contain)."""
    good = _good()
    a, b = "Drugamab1", "Otherzole1"
    big_columns = (",".join(["c"] * 100_000) + "\n").encode()
    line_cap = 4 * django_settings.DDI_MAX_FIELD_BYTES
    return [
        ("utf8_bom.csv", codecs.BOM_UTF8 + good, 201, "succeeded"),
        ("utf16le.csv", codecs.BOM_UTF16_LE + good.decode().encode("utf-16-le"), 201, "succeeded"),
        ("utf16le_no_bom.csv", good.decode().encode("utf-16-le"), 400, "NUL"),
        (
            "latin1.csv",
            _rows_text([[f"Caf\xe9{a}", b, f"Caf\xe9{a} raises {b}."]]).encode("latin-1"),
            400,
            "not valid utf-8",
        ),
        ("nul.csv", good.replace(b"anticoagulant", b"anti\x00coagulant", 1), 400, "NUL"),
        (
            "long_line.csv",
            b"Drug 1,Drug 2,Interaction Description\n" + b"x" * (line_cap + 10),
            400,
            "longer than",
        ),
        ("100k_columns.csv", big_columns + b"a,b\n", 400, "and 99,970 more"),
        (
            "100k_columns_row.csv",
            good + (",".join(["c"] * 100_000)).encode() + b"\n",
            400,
            "expected 3 columns, got 100000",
        ),
        ("unclosed_quote.csv", good + b'"Drugamab9,Otherzole9,never closed\n', 400, "never closed"),
        ("cr_only.csv", good.replace(b"\n", b"\r"), 201, "succeeded"),
        (
            "embedded_newline.csv",
            csv_bytes([[a, b, f"{a} may\nincrease\r\n{b}."]]),
            201,
            "succeeded",
        ),
        (
            "formula.csv",
            csv_bytes(
                [
                    ["=cmd|' /C calc'!A0", b, f"=cmd|' /C calc'!A0 with {b}."],
                    ["@SUM(1+1)", a, f"@SUM(1+1) and {a}"],
                ]
            ),
            201,
            "succeeded",
        ),
        (
            "script.csv",
            csv_bytes(
                [
                    [
                        f"<script>alert(1)</script>{a}",
                        b,
                        f"<script>alert(1)</script>{a} and {b} <img src=x onerror=alert(1)>",
                    ]
                ]
            ),
            201,
            "succeeded",
        ),
        (
            "rtl.csv",
            csv_bytes([[f"\u202e{a}", b, f"\u202e{a} lowers {b}\u202c."]]),
            201,
            "succeeded",
        ),
        ("header_only.csv", b"Drug 1,Drug 2,Interaction Description\n", 400, "no data rows"),
        ("blank_lines.csv", b"\n\n\n", 400, "empty"),
        ("zip_bomb.csv", zip_bomb((1 << 30) if LONG else (64 << 20)), 400, "zip archive"),
        ("gzip.csv", gzip.compress(good), 400, "gzip archive"),
        ("not_objects.jsonl", b"[1, 2]\n", 400, "expected a JSON object"),
        ("nested.jsonl", b"[" * 100_000 + b"\n", 400, "nested too deeply"),
        ("long_int.jsonl", b'{"Drug 1": ' + b"9" * 5000 + b"}\n", 400, "invalid JSON"),
        (
            "semicolons.csv",
            b"Drug 1;Drug 2;Interaction Description\na;b;a b\n",
            400,
            "semicolon-separated",
        ),
        ("../../etc/passwd.csv", _good(2), 201, "succeeded"),
        ("<img src=x onerror=alert(1)>.csv", _good(4), 201, "succeeded"),
    ]


@pytest.mark.e2e
@pytest.mark.chaos
def test_every_hostile_corpus_file_gives_201_or_400_with_a_clear_message(project, curator_carl):
    client = APIClient()
    client.force_authenticate(curator_carl)
    url = reverse("api-project-imports", args=[project.pk])
    results = []
    for name, content, expected, needle in corpus():
        started = time.monotonic()
        response = client.post(url, {"file": SimpleUploadedFile(name, content)}, format="multipart")
        elapsed = time.monotonic() - started
        body = response.content.decode(errors="replace")
        results.append((name, response.status_code, elapsed))
        assert response.status_code == expected, (name, body[:500])
        assert needle in body, (name, body[:500])
        assert len(body) < 20_000, (name, "the report must stay short", len(body))
        assert elapsed < 20, (name, elapsed)
        if expected == 400:
            assert "Traceback" not in body
    FIGURES["corpus_files"] = len(results)
    print("\nscenario 9 corpus:", ", ".join(f"{n}={s} ({t:.2f}s)" for n, s, t in results))


def test_a_bom_file_parses_its_header_and_keeps_the_text(project, curator_carl):
    client = APIClient()
    client.force_authenticate(curator_carl)
    rows = [interaction_row(i) for i in range(2)]
    data = codecs.BOM_UTF8 + csv_bytes([[*row, "Antagonistic"] for row in rows], [*HEADER, "label"])

    response = client.post(
        reverse("api-project-imports", args=[project.pk]),
        {"file": SimpleUploadedFile("bom.csv", data), "label_column": "label"},
        format="multipart",
    )

    assert response.status_code == 201, response.content
    assert response.json()["labels_created"] == 2
    stored = list(Interaction.objects.filter(project=project).values_list("drug_a", flat=True))
    assert stored == [rows[0][0], rows[1][0]]  # no "\ufeff" glued to the first name


def test_uploaded_file_names_are_stored_without_path_or_markup(project, curator_carl):
    client = APIClient()
    client.force_authenticate(curator_carl)
    response = client.post(
        reverse("api-project-imports", args=[project.pk]),
        {"file": SimpleUploadedFile("../../<b>x</b>.csv", _good(2))},
        format="multipart",
    )
    assert response.status_code == 201
    assert "/" not in response.json()["file_name"] and "<" not in response.json()["file_name"]


# --- a 200 MB single line, imported by a real process with its RSS measured ------------------------

RSS_WRAPPER = """
import resource, subprocess, sys, time
started = time.monotonic()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.monotonic() - started)
print(done.stderr[-2000:], file=sys.stderr)
"""


def _import_rss(path: Path, project_name: str, env: dict) -> tuple[int, int, float, str]:
    command = [
        sys.executable,
        "-c",
        RSS_WRAPPER,
        sys.executable,
        "manage.py",
        "import_interactions",
        str(path),
        "--project",
        project_name,
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    code, rss_kb, seconds = done.stdout.split()
    return int(code), int(rss_kb), float(seconds), done.stderr


@pytest.mark.e2e
@pytest.mark.chaos
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_200_mb_single_line_fails_fast_with_bounded_memory(tmp_path):
    project = ProjectFactory(name="Huge line")
    db = connection.settings_dict
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DDI_TEST", "PYTEST"))},
        "DATABASE_URL": f"postgres://{db.get('USER') or 'postgres'}@127.0.0.1:5432/{db['NAME']}",
        "DDI_VAR_DIR": str(tmp_path / "var"),
    }
    small = tmp_path / "small.csv"
    small.write_bytes(_good(3))
    huge = tmp_path / "huge_line.csv"
    with huge.open("wb") as out:
        out.write(b"Drug 1,Drug 2,Interaction Description\n")
        block = b"Drugamab," * (1 << 17)
        for _ in range((200 << 20) // len(block)):
            out.write(block)

    code, baseline_kb, _, _ = _import_rss(small, project.name, env)
    assert code == 0
    code, huge_kb, seconds, stderr = _import_rss(huge, project.name, env)

    assert code != 0 and "longer than" in stderr, stderr
    assert seconds < 60
    assert huge_kb - baseline_kb < 100 * 1024, (baseline_kb, huge_kb)  # < 100 MB above a tiny file
    assert Interaction.objects.filter(project=project).count() == 3
    print(
        f"\nscenario 9: 200 MB line: peak RSS {huge_kb / 1024:.0f} MB "
        f"(tiny file: {baseline_kb / 1024:.0f} MB), failed in {seconds:.1f} s"
    )
