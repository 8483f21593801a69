"""An import that dies of an unexpected error (lost database connection, killed process) never
leaves its ImportJob "running" for ever: it ends failed, or the next import of the file says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import OperationalError

from annotations.models import ImportJob, Interaction
from annotations.services import importing
from annotations.services.importing import file_sha256, import_interactions

ROWS = "\n".join(
    f"Alphazol{i},Betamab{i},Alphazol{i} may increase the activities of Betamab{i}."
    for i in range(5)
)
CSV = "Drug 1,Drug 2,Interaction Description\n" + ROWS + "\n"


@pytest.fixture
def csv_file(tmp_path) -> Path:
    path = tmp_path / "interactions.csv"
    path.write_text(CSV)
    return path


@pytest.mark.django_db(transaction=True)
def test_an_import_that_loses_its_database_mid_way_ends_failed_with_nothing_kept(
    project, csv_file, monkeypatch
):
    def connection_lost(self):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(importing.writer.BatchWriter, "flush", connection_lost)
    with pytest.raises(OperationalError):
        import_interactions(project=project, path=csv_file)

    job = ImportJob.objects.get(project=project)
    assert job.state == ImportJob.State.FAILED
    assert job.finished_at is not None
    assert job.errors == [
        "interrupted: OperationalError: server closed the connection unexpectedly"
    ]
    assert Interaction.objects.filter(project=project).count() == 0


@pytest.mark.django_db
def test_a_new_import_of_the_same_file_marks_a_job_left_running_as_interrupted(
    project, csv_file, admin_ada
):
    # A killed process leaves its job running (nothing could update it).
    orphan = ImportJob.objects.create(
        project=project, file_name=csv_file.name, sha256=file_sha256(csv_file), file_format="?"
    )
    other_file = ImportJob.objects.create(
        project=project, file_name="other.csv", sha256="0" * 64, file_format="?"
    )

    outcome = import_interactions(project=project, path=csv_file, user=admin_ada)

    orphan.refresh_from_db()
    other_file.refresh_from_db()
    assert orphan.state == ImportJob.State.FAILED
    assert orphan.errors[0].startswith("interrupted:")
    assert other_file.state == ImportJob.State.RUNNING  # another file's import is not touched
    assert outcome.job.state == ImportJob.State.SUCCEEDED
    assert outcome.job.interactions_created == 5
