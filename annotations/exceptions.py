"""Domain exceptions raised by services and shown to users at the edge (views, API, commands)."""

from __future__ import annotations

from dataclasses import dataclass, field


class DomainError(Exception):
    """Base class: the message is written for the person who can act on it."""


@dataclass(frozen=True)
class ImportIssue:
    """One problem found in an import file: where it is and what was expected."""

    line: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass
class ImportFormatError(DomainError):
    """The file cannot be imported; nothing from it was written."""

    file_name: str
    issues: list[ImportIssue] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"{self.file_name}: import aborted, nothing was imported"
        lines = [f"{self.file_name}: {issue}" for issue in self.issues]
        return "\n".join([head, *lines])


class EditConflict(DomainError):
    """Someone else changed the label since it was loaded (optimistic locking)."""


class InvalidLabelClass(DomainError):
    """A class name that is not in the project's class list."""


class EvaluationError(DomainError):
    """The requested evaluation cannot be computed (no references, unknown class...)."""


class InvalidGuideline(DomainError):
    """An empty or oversized guideline text."""


class InvalidExportFilter(DomainError):
    """An export option that cannot be applied (unknown format, source or class)."""


class AuditCannotStart(DomainError):
    """The project has nothing to audit, or the request is out of range (message says why)."""


class InvalidReferenceFile(DomainError):
    """The loop's reference file cannot be used (missing, wrong columns, unknown classes)."""


class InvalidRule(DomainError):
    """A rule pattern that is invalid or could backtrack catastrophically."""


class RunNotCancellable(DomainError):
    """The run already ended."""


class NothingToTrain(DomainError):
    """Not enough labels (or classes) to train a model."""


class NoActiveModelVersion(DomainError):
    """Pseudo-labeling needs a model version and the project has no active one yet."""


class InvalidRunParams(DomainError):
    """A training or pseudo-labeling parameter is unknown or out of range."""


class NotYourBlindReview(DomainError):
    """The blind review row is answered, held by someone else, or not for this person."""


class BlindReviewRequired(DomainError):
    """The person holds a blind review on the item: the ordinary label write is refused."""


class AdjudicationClosed(DomainError):
    """The adjudication was decided already (by this curator or another)."""
