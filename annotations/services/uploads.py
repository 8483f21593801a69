"""Import an uploaded file (API or web page) through the one importer, synchronously.

The upload is copied under its own (sanitised) name into a private folder below
FILE_UPLOAD_TEMP_DIR, because the importer reads the format from the extension and records the
file name on the ImportJob; the folder is removed afterwards whatever happens, so no upload is
ever left on disk. Files are capped at settings.DDI_MAX_UPLOAD_BYTES before they get here (the
input serializer / form), which keeps the request short enough to run inline.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.uploadedfile import UploadedFile
from django.utils.text import get_valid_filename

from annotations.models import Label, Project
from annotations.services.importing import ColumnMapping, ImportOutcome, import_interactions


def _safe_name(name: str) -> str:
    """The base name only, without path parts or shell/HTML-special characters."""
    base = Path(name.replace("\\", "/")).name
    try:
        cleaned = get_valid_filename(base)
    except SuspiciousFileOperation:  # nothing usable left, e.g. ".." or "???"
        cleaned = ""
    return cleaned[-200:] or "upload.csv"


def import_uploaded_file(
    *,
    project: Project,
    upload: UploadedFile,
    label_column: str = "",
    label_source: str = Label.Source.IMPORT,
    user=None,
) -> ImportOutcome:
    """Import an uploaded file into `project` (all-or-nothing, idempotent by file sha256).

    Side effects: those of import_interactions (rows, labels, one ImportJob); a temporary copy
    of the upload that is always deleted. Raises ImportFormatError with the row-level report.
    Safe to run twice: the same file again returns the earlier job and adds nothing.
    Labels from the file are stored with source `import` (distinct from the demo's and the
    command line's `seed`) unless the uploader asks for `seed`.
    """
    if label_source not in (Label.Source.IMPORT, Label.Source.SEED):
        raise ValueError(f"label_source must be import or seed, not {label_source!r}")
    temp_root = getattr(settings, "FILE_UPLOAD_TEMP_DIR", None) or None
    with tempfile.TemporaryDirectory(prefix="import-", dir=temp_root) as folder:
        path = Path(folder) / _safe_name(upload.name or "")
        with path.open("wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        mapping = ColumnMapping(label=label_column.strip() or None)
        return import_interactions(
            project=project, path=path, mapping=mapping, label_source=label_source, user=user
        )
