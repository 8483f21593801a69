"""Scenario 10: request size and count limits give 400/413 with a message, never a 500, and leave
no upload behind; the largest legitimate upload still goes through.

Through Django's test client (fast, SQLite) and against gunicorn over real sockets (PostgreSQL,
`postgres` marker), where a lying Content-Length can be sent.
"""

from __future__ import annotations

import json
import re
import socket
import uuid
from pathlib import Path

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from annotations.models import Interaction
from annotations.roles import Role
from annotations.tokens import issue_token
from tests.factories import InteractionFactory, ProjectFactory, UserFactory
from tests.reliability.input_files import HEADER, csv_bytes

MB = 1024 * 1024


def _big_csv(size: int) -> bytes:
    """A valid CSV of about `size` bytes: few rows, long descriptions (fast to import)."""
    rows, total, i = [], 0, 0
    while total < size - 70_000:
        a, b = f"Drugamab{i}", f"Otherzole{i}"
        text = f"{a} may increase the activities of {b}. " + "Background text. " * 3500
        rows.append([a, b, text[:60_000]])
        total += len(text[:60_000]) + 40
        i += 1
    return csv_bytes(rows)


@pytest.fixture
def upload_dir(settings, tmp_path) -> Path:
    folder = tmp_path / "uploads"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    return folder


@pytest.fixture
def api(curator_carl) -> APIClient:
    client = APIClient()
    client.force_authenticate(curator_carl)
    return client


def _imports(project) -> str:
    return reverse("api-project-imports", args=[project.pk])


@pytest.mark.e2e
def test_a_30_mb_upload_is_refused_as_too_large_and_not_kept(api, project, upload_dir):
    data = b"Drug 1,Drug 2,Interaction Description\n" + b"a,b,a b\n" * (30 * MB // 8)

    response = api.post(
        _imports(project), {"file": SimpleUploadedFile("big.csv", data)}, format="multipart"
    )

    assert response.status_code == 400
    assert "file too large" in response.json()["file"][0]
    assert "the limit is 20,971,520 bytes" in response.json()["file"][0]
    assert list(upload_dir.iterdir()) == []
    assert Interaction.objects.filter(project=project).count() == 0


@pytest.mark.e2e
def test_a_19_mb_upload_is_imported_and_leaves_no_temporary_file(api, project, upload_dir):
    data = _big_csv(19 * MB)
    assert 18 * MB < len(data) < 20 * MB

    response = api.post(
        _imports(project), {"file": SimpleUploadedFile("big.csv", data)}, format="multipart"
    )

    assert response.status_code == 201, response.content[:500]
    assert response.json()["interactions_created"] == Interaction.objects.count() > 300
    assert list(upload_dir.iterdir()) == []


def test_a_30_mb_json_body_is_refused_by_drf(api, project):
    interaction = InteractionFactory(project=project)
    body = json.dumps({"interaction": interaction.pk, "note": "x" * (30 * MB)})

    response = api.post("/api/labels/", data=body, content_type="application/json")

    assert response.status_code in (400, 413)
    assert not interaction.__class__.objects.get(pk=interaction.pk).events.exists()


def test_2000_form_fields_are_refused(api, project, upload_dir):
    fields = {f"field{i}": "x" for i in range(2000)}
    fields["file"] = SimpleUploadedFile("x.csv", csv_bytes([["a", "b", "a b"]]))

    response = api.post(_imports(project), fields, format="multipart")

    assert response.status_code == 400
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in response.json()["detail"]
    assert list(upload_dir.iterdir()) == []


def test_150_files_are_refused(api, project, upload_dir):
    files = {f"file{i}": SimpleUploadedFile(f"x{i}.csv", b"a,b\n") for i in range(150)}

    response = api.post(_imports(project), files, format="multipart")

    assert response.status_code == 400
    assert "DATA_UPLOAD_MAX_NUMBER_FILES" in response.json()["detail"]
    assert list(upload_dir.iterdir()) == []


def test_the_import_page_refuses_a_30_mb_file_with_a_message(
    client, project, curator_carl, upload_dir
):
    client.force_login(curator_carl)
    data = SimpleUploadedFile("big.csv", b"x" * (30 * MB))

    page = client.post(reverse("annotations:imports", args=[project.pk]), {"file": data})

    assert page.status_code == 422
    assert "File too large" in page.content.decode()
    assert list(upload_dir.iterdir()) == []


# --- over real sockets, against gunicorn --------------------------------------------------------


def _raw_request(port: int, head: str, body: bytes, *, close_early: bool) -> bytes:
    """Send a request by hand (to lie in Content-Length); return what the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        if close_early:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


@pytest.mark.e2e
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_oversized_and_lying_requests_never_get_a_500_from_gunicorn(live_gunicorn, tmp_path):
    server = live_gunicorn()
    project = ProjectFactory(name="Limits")
    curator = UserFactory(username="carl", role=Role.CURATOR)
    interaction = InteractionFactory(project=project)
    token = issue_token(curator)
    auth = {"Authorization": f"Token {token}"}
    url = f"{server.url}/api/projects/{project.pk}/imports/"
    statuses: dict[str, int] = {}

    big = b"Drug 1,Drug 2,Interaction Description\n" + b"a,b,a b\n" * (30 * MB // 8)
    answer = requests.post(url, headers=auth, files={"file": ("big.csv", big)}, timeout=120)
    statuses["30 MB multipart"] = answer.status_code
    assert answer.status_code == 400 and "file too large" in answer.text

    body = json.dumps({"interaction": interaction.pk, "note": "x" * (30 * MB)})
    answer = requests.post(
        f"{server.url}/api/labels/",
        data=body,
        headers={**auth, "Content-Type": "application/json"},
        timeout=120,
    )
    statuses["30 MB JSON"] = answer.status_code
    assert answer.status_code in (400, 413)

    fields = {f"f{i}": "x" for i in range(2000)}
    answer = requests.post(
        url, headers=auth, data=fields, files={"file": ("x.csv", b"a")}, timeout=60
    )
    statuses["2000 fields"] = answer.status_code
    assert answer.status_code == 400

    files = [(f"file{i}", (f"x{i}.csv", b"a,b\n")) for i in range(150)]
    answer = requests.post(url, headers=auth, files=files, timeout=60)
    statuses["150 files"] = answer.status_code
    assert answer.status_code == 400

    boundary = uuid.uuid4().hex
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n"
    ).encode() + csv_bytes([HEADER[:], ["a", "b", "a b"]])
    for name, claimed, close_early in (
        ("Content-Length larger than the body", len(part) + 10 * MB, True),
        ("Content-Length smaller than the body", len(part) // 2, False),
        ("Content-Length of 30 MB, tiny body", 30 * MB, True),
    ):
        head = (
            f"POST /api/projects/{project.pk}/imports/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Token {token}\r\nConnection: close\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {claimed}\r\n\r\n"
        )
        reply = _raw_request(server.port, head, part, close_early=close_early)
        status = int(reply.split()[1]) if reply.startswith(b"HTTP/") else 0
        statuses[name] = status
        assert status != 500 and not 500 <= status < 600, (name, reply[:300])

    # Django logs the refused bodies (RequestDataTooBig...) with their traceback at WARNING; what
    # must never appear is a 5xx in gunicorn's access log or an "Internal Server Error".
    log = server.tail(200_000)
    assert "Internal Server Error" not in log, log[-3000:]
    assert not re.search(r'HTTP/1\.[01]" 5\d\d ', log), log[-3000:]
    assert Interaction.objects.filter(project=project).count() == 1
    leftovers = list((tmp_path / "var" / "uploads").glob("*"))
    assert leftovers == [], leftovers
    print(f"\nscenario 10 statuses: {statuses}")
