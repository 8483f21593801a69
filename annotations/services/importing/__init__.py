"""Importing interaction files: job.py runs an import (all-or-nothing, see its docstring),
columns.py maps the header, rows.py checks and blinds each row, writer.py writes them in batches.
"""

from annotations.services.importing.columns import ColumnMapping
from annotations.services.importing.job import (
    MAX_REPORTED_ISSUES,
    ImportOutcome,
    file_sha256,
    import_interactions,
)

__all__ = [
    "MAX_REPORTED_ISSUES",
    "ColumnMapping",
    "ImportOutcome",
    "file_sha256",
    "import_interactions",
]
