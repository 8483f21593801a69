"""Scenario 8: idempotent, all-or-nothing import through the real upload endpoint, and an import
process SIGKILLed half-way (PostgreSQL) that leaves nothing behind and re-runs to exactly N rows."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from annotations.models import ImportJob, Interaction, Label, LabelEvent, Project
from tests.factories import ProjectFactory
from tests.reliability.input_files import (
    LONG,
    reorder_columns,
    write_interactions_csv,
)

ROOT = Path(__file__).resolve().parents[2]
UPLOAD_ROWS = 10_000
KILL_ROWS = 50_000 if LONG else 6_000


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _upload(client: APIClient, project: Project, name: str, data: bytes, **extra):
    return client.post(
        reverse("api-project-imports", args=[project.pk]),
        {"file": SimpleUploadedFile(name, data, content_type="text/csv"), **extra},
        format="multipart",
    )


@pytest.mark.e2e
@pytest.mark.slow
def test_uploading_the_same_10k_file_twice_or_reordered_adds_the_rows_once(
    project, curator_carl, tmp_path
):
    data = write_interactions_csv(tmp_path / "ddi_10k.csv", UPLOAD_ROWS).read_bytes()
    client = _api(curator_carl)

    first = _upload(client, project, "ddi_10k.csv", data)
    assert first.status_code == 201, first.content
    assert first.json()["interactions_created"] == UPLOAD_ROWS
    assert first.json()["state"] == "succeeded"

    again = _upload(client, project, "ddi_10k_again.csv", data)
    assert again.status_code == 200, again.content
    assert again.json()["id"] == first.json()["id"]  # the existing job, same sha256

    reordered = reorder_columns(data, [2, 0, 1])
    shuffled = _upload(client, project, "ddi_10k_reordered.csv", reordered)
    assert shuffled.status_code == 201, shuffled.content
    assert shuffled.json()["sha256"] != first.json()["sha256"]
    assert shuffled.json()["interactions_created"] == 0  # same content hashes
    assert shuffled.json()["rows_read"] == UPLOAD_ROWS

    assert Interaction.objects.filter(project=project).count() == UPLOAD_ROWS
    assert ImportJob.objects.filter(project=project, state="succeeded").count() == 2


@pytest.mark.e2e
@pytest.mark.slow
def test_a_wrong_column_count_on_line_7001_imports_nothing_and_names_the_line(
    project, curator_carl, tmp_path
):
    path = write_interactions_csv(tmp_path / "bad_row.csv", UPLOAD_ROWS, bad_line=7001)

    response = _upload(_api(curator_carl), project, "bad_row.csv", path.read_bytes())

    assert response.status_code == 400, response.content
    report = response.json()
    assert "nothing was imported" in report["detail"]
    assert [e["line"] for e in report["errors"]] == [7001]
    assert report["errors"][0]["text"].startswith("line 7001: expected 3 columns, got 5")
    assert Interaction.objects.filter(project=project).count() == 0
    job = ImportJob.objects.get(project=project)
    assert job.state == ImportJob.State.FAILED
    assert job.interactions_created == 0
    assert job.errors[0].startswith("line 7001: expected 3 columns, got 5")


def test_seed_labels_of_an_upload_get_one_history_row_each(project, curator_carl, tmp_path):
    path = write_interactions_csv(tmp_path / "seed.csv", 300, labels=True)

    response = _upload(
        _api(curator_carl), project, "seed.csv", path.read_bytes(), label_column="label"
    )

    assert response.status_code == 201, response.content
    assert response.json()["labels_created"] == 300
    labels = Label.objects.filter(interaction__project=project)
    events = LabelEvent.objects.filter(interaction__project=project)
    assert labels.count() == events.count() == 300
    assert set(events.values_list("action", flat=True)) == {LabelEvent.Action.CREATE}
    assert set(events.values_list("version", flat=True)) == {1}
    assert not labels.exclude(interaction_id__in=events.values("interaction_id")).exists()


def test_an_unknown_label_column_is_a_400_naming_the_columns(project, curator_carl, tmp_path):
    path = write_interactions_csv(tmp_path / "seed.csv", 5)

    response = _upload(
        _api(curator_carl), project, "seed.csv", path.read_bytes(), label_column="klass"
    )

    assert response.status_code == 400
    assert "missing column" in response.json()["errors"][0]["message"]
    assert "'Drug 1'" in response.json()["errors"][0]["message"]


def test_only_curators_upload_and_restricted_projects_stay_hidden(
    project, reviewer_rita, curator_carl, tmp_path
):
    data = write_interactions_csv(tmp_path / "x.csv", 3).read_bytes()
    assert _upload(_api(reviewer_rita), project, "x.csv", data).status_code == 403
    hidden = ProjectFactory(name="Hidden", is_restricted=True)
    assert _upload(_api(curator_carl), hidden, "x.csv", data).status_code == 404
    assert Interaction.objects.count() == 0


def test_the_import_page_shows_the_row_level_report(client, project, curator_carl, tmp_path):
    client.force_login(curator_carl)
    url = reverse("annotations:imports", args=[project.pk])
    assert client.get(url).status_code == 200
    bad = write_interactions_csv(tmp_path / "bad.csv", 20, bad_line=12)

    with bad.open("rb") as handle:
        page = client.post(url, {"file": handle, "label_column": ""})

    assert page.status_code == 422
    assert "line 12: expected 3 columns, got 5" in page.content.decode()
    good = write_interactions_csv(tmp_path / "good.csv", 20)
    with good.open("rb") as handle:
        page = client.post(url, {"file": handle, "label_column": ""})
    assert page.status_code == 200
    assert "20 new interactions" in page.content.decode()
    assert Interaction.objects.filter(project=project).count() == 20


def test_the_import_page_needs_the_curator_role(client, project, reviewer_rita):
    client.force_login(reviewer_rita)
    assert client.get(reverse("annotations:imports", args=[project.pk])).status_code == 403


# --- kill -9 half-way (PostgreSQL, a real manage.py process) -------------------------------------


def _database_url() -> str:
    db = connection.settings_dict
    return (
        f"postgres://{db.get('USER') or 'postgres'}@127.0.0.1:{db.get('PORT') or 5432}/{db['NAME']}"
    )


def _import_command(path: Path, project: Project) -> list[str]:
    return [
        sys.executable,
        "manage.py",
        "import_interactions",
        str(path),
        "--project",
        project.name,
        "--label-column",
        "label",
    ]


def _kill_at_progress(command: list[str], env: dict, percent: int, timeout: float = 300) -> int:
    """Run `command` with its stderr on a pty (so tqdm draws its bar), SIGKILL it once the bar
    reaches `percent`; return the percentage seen at the kill."""
    master, replica = pty.openpty()
    # A new pty is 0 columns wide, and tqdm trims its bar to the width: make it 200 wide.
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=replica,
        stdin=subprocess.DEVNULL,
    )
    os.close(replica)
    seen, text = 0, ""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                text = (text + os.read(master, 4096).decode(errors="replace"))[-2000:]
            except OSError:  # EIO: the process closed its end (it exited)
                break
            found = re.findall(r"(\d+)%\|", text)
            seen = int(found[-1]) if found else 0
            if seen >= percent:
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.wait(timeout=60)
        os.close(master)
    assert process.returncode == -signal.SIGKILL, f"not killed (rc {process.returncode}): {text}"
    return seen


@pytest.mark.e2e
@pytest.mark.chaos
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_import_killed_half_way_leaves_nothing_and_the_rerun_imports_exactly_n(tmp_path):
    project = ProjectFactory(name="Import kill test")
    path = write_interactions_csv(tmp_path / "ddi_kill.csv", KILL_ROWS, labels=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DDI_TEST", "PYTEST"))},
        "DATABASE_URL": _database_url(),
        "DDI_VAR_DIR": str(tmp_path / "var"),
        "DDI_IMPORT_BATCH_SIZE": "1000",  # several batches are written before the kill
    }
    command = _import_command(path, project)

    seen = _kill_at_progress(command, env, percent=50)

    assert 50 <= seen < 100
    # The killed import wrote nothing that stays: no partial batch, no label, no history.
    assert Interaction.objects.filter(project=project).count() == 0
    assert Label.objects.filter(interaction__project=project).count() == 0
    assert LabelEvent.objects.filter(interaction__project=project).count() == 0
    assert not ImportJob.objects.filter(project=project, state="succeeded").exists()

    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)

    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert Interaction.objects.filter(project=project).count() == KILL_ROWS
    assert Label.objects.filter(interaction__project=project).count() == KILL_ROWS
    assert LabelEvent.objects.filter(interaction__project=project).count() == KILL_ROWS
    job = ImportJob.objects.get(project=project, state="succeeded")
    assert job.interactions_created == job.labels_created == KILL_ROWS
    # A third run is a no-op (same sha256).
    third = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0 and "already imported" in third.stdout
    assert Interaction.objects.filter(project=project).count() == KILL_ROWS
