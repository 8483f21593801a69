"""Streaming readers for interaction files (CSV, TSV, JSONL) with line-precise errors.

A reader yields `Record`s (line number + field dict) and never holds the whole file: lines are
read with a length cap, so a 200 MB line or a binary blob fails fast instead of filling memory.
File-level problems raise ImportFormatError at once; row-level problems are returned to the
caller as ImportIssue so it can collect several before aborting.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NoReturn

from annotations.exceptions import ImportFormatError, ImportIssue

FORMATS = ("csv", "tsv", "jsonl")
_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_BINARY_MAGIC = {
    b"PK\x03\x04": "a zip archive",
    b"\x1f\x8b": "a gzip archive",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xd0\xcf\x11\xe0": "an old Excel/Word document",
    b"BZh": "a bzip2 archive",
    b"\xfd7zXZ": "an xz archive",
    b"7z\xbc\xaf": "a 7-zip archive",
}


@dataclass(frozen=True)
class Record:
    """One data row: its first physical line number and its fields by header name."""

    line: int
    fields: dict[str, str]


def detect_format(path: Path, head: bytes) -> str:
    """csv / tsv / jsonl from the extension, else from the first bytes."""
    by_extension = _EXTENSIONS.get(path.suffix.lower())
    if by_extension:
        return by_extension
    first_line = head.lstrip(codecs.BOM_UTF8).split(b"\n", 1)[0]
    if first_line.lstrip().startswith(b"{"):
        return "jsonl"
    if b"\t" in first_line and b"," not in first_line:
        return "tsv"
    return "csv"


def check_not_binary(file_name: str, head: bytes) -> str:
    """Return the text encoding to use, or raise for empty and binary files."""
    if not head.strip():
        raise ImportFormatError(file_name, [ImportIssue(None, None, "the file is empty")])
    for magic, what in _BINARY_MAGIC.items():
        if head.startswith(magic):
            raise ImportFormatError(
                file_name,
                [
                    ImportIssue(
                        1, None, f"this is {what}, not a text file; expected CSV, TSV or JSONL"
                    )
                ],
            )
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        line = head[: head.index(b"\x00")].count(b"\n") + 1
        raise ImportFormatError(
            file_name,
            [
                ImportIssue(
                    line,
                    None,
                    "contains NUL bytes: a binary file or UTF-16 without BOM; save it as UTF-8",
                )
            ],
        )
    return "utf-8-sig"


class LineReader:
    """Iterates decoded lines (keeping line ends, for csv) with a per-line length cap.

    UTF-8 is decoded line by line from the bytes (a newline byte never occurs inside a UTF-8
    sequence), so a decoding error names its exact line. UTF-16 and CR-only files go through
    TextIOWrapper's universal newlines instead.
    """

    def __init__(self, raw: BinaryIO, *, file_name: str, encoding: str, max_line_chars: int):
        self._raw = raw
        self._file_name = file_name
        self._encoding = encoding
        self._max = max_line_chars
        self.lines_read = 0

    def __iter__(self) -> Iterator[str]:
        head = self._raw.read(8192)
        self._raw.seek(0)
        by_bytes = self._encoding == "utf-8-sig" and not (b"\r" in head and b"\n" not in head)
        lines = self._utf8_lines() if by_bytes else self._text_lines()
        for line in lines:
            if len(line) > self._max and not line.endswith(("\n", "\r")):
                self._fail(self.lines_read + 1, f"line is longer than {self._max:,} characters")
            self.lines_read += 1
            if "\x00" in line:
                self._fail(self.lines_read, "contains a NUL byte; expected plain text")
            yield line

    def _utf8_lines(self) -> Iterator[str]:
        first = True
        while True:
            chunk = self._raw.readline(4 * self._max + 1)
            if not chunk:
                return
            if first and chunk.startswith(codecs.BOM_UTF8):
                chunk = chunk[len(codecs.BOM_UTF8) :]
            first = False
            try:
                yield chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                if exc.start >= 4 * self._max - 4:  # cut inside a character by the length cap
                    self._fail(self.lines_read + 1, f"line is longer than {self._max:,} characters")
                bad = chunk[exc.start : exc.start + 1].hex()
                self._fail(
                    self.lines_read + 1,
                    f"not valid utf-8 (byte 0x{bad} at column {exc.start + 1});"
                    " save the file as UTF-8",
                )

    def _text_lines(self) -> Iterator[str]:
        text = io.TextIOWrapper(self._raw, encoding=self._encoding, errors="strict", newline="")
        while True:
            try:
                line = text.readline(self._max + 1)
            except UnicodeDecodeError as exc:
                self._fail(self.lines_read + 1, f"not valid {exc.encoding}; save the file as UTF-8")
            if not line:
                return
            yield line

    def _fail(self, line: int, message: str) -> NoReturn:
        raise ImportFormatError(self._file_name, [ImportIssue(line, None, message)])


def read_delimited(
    lines: LineReader, *, file_name: str, delimiter: str, max_field_chars: int
) -> tuple[list[str], Iterator[Record | ImportIssue]]:
    """Parse the header now (raising on problems) and return it with a lazy row iterator."""
    csv.field_size_limit(max_field_chars)
    reader = csv.reader(iter(lines), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFormatError(file_name, [ImportIssue(None, None, "the file is empty")]) from None
    except csv.Error as exc:
        raise ImportFormatError(
            file_name, [ImportIssue(1, None, f"unreadable header: {exc}")]
        ) from None
    header = [name.strip() for name in header]

    def rows() -> Iterator[Record | ImportIssue]:
        start = reader.line_num + 1
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield _csv_issue(exc, start, max_field_chars)
                return  # the csv state is unreliable after a quoting error
            line, start = start, reader.line_num + 1
            if not any(value.strip() for value in values):
                continue  # blank line
            if len(values) != len(header):
                yield ImportIssue(
                    line,
                    None,
                    f"expected {len(header)} columns, got {len(values)}"
                    " (check the delimiter and the quotes)",
                )
                continue
            yield Record(line, dict(zip(header, values, strict=True)))

    return header, rows()


def _csv_issue(exc: csv.Error, line: int, max_field_chars: int) -> ImportIssue:
    text = str(exc)
    if "field larger than field limit" in text:
        return ImportIssue(line, None, f"a field is longer than {max_field_chars:,} characters")
    if "unexpected end of data" in text or "EOF" in text:
        return ImportIssue(line, None, 'a quoted field is never closed (unbalanced " quote)')
    return ImportIssue(line, None, f"malformed CSV: {text}")


def read_jsonl(
    lines: LineReader, *, file_name: str, max_field_chars: int
) -> tuple[list[str], Iterator[Record | ImportIssue]]:
    """JSON Lines: one object per line; the first object's keys are the header."""
    iterator = iter(lines)
    first: Record | ImportIssue | None = None
    line_no = 0
    for raw in iterator:
        line_no += 1
        if raw.strip():
            first = _json_record(raw, line_no, max_field_chars)
            break
    if first is None:
        raise ImportFormatError(file_name, [ImportIssue(None, None, "the file is empty")])
    if isinstance(first, ImportIssue):
        raise ImportFormatError(file_name, [first])
    header = list(first.fields)

    def rows() -> Iterator[Record | ImportIssue]:
        yield first
        number = line_no
        for raw in iterator:
            number += 1
            if raw.strip():
                yield _json_record(raw, number, max_field_chars)

    return header, rows()


def _json_record(raw: str, line: int, max_field_chars: int) -> Record | ImportIssue:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return ImportIssue(line, None, f"invalid JSON at column {exc.colno}: {exc.msg}")
    except RecursionError:
        return ImportIssue(line, None, "invalid JSON: nested too deeply to read")
    except ValueError as exc:  # e.g. an integer past Python's 4,300-digit conversion limit
        return ImportIssue(line, None, f"invalid JSON: {exc}")
    if not isinstance(value, dict):
        return ImportIssue(line, None, f"expected a JSON object, got {type(value).__name__}")
    fields: dict[str, str] = {}
    for key, item in value.items():
        text = "" if item is None else str(item)
        if len(text) > max_field_chars:
            return ImportIssue(
                line, str(key), f"field is longer than {max_field_chars:,} characters"
            )
        fields[str(key)] = text
    return Record(line, fields)
