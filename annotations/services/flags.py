"""The curators' flag inbox: label a flagged item, send it back with a comment, or amend the
guideline (a new revision number and date). Label writes go through services.labels."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotations.exceptions import InvalidGuideline
from annotations.models import Project

MAX_GUIDELINE_CHARS = 20_000


def amend_guideline(*, project: Project, user: AbstractBaseUser, text: str) -> Project:
    """Replace the project's guideline; its revision number goes up by one, dated now.

    Answers made afterwards record the new revision (agreement per revision). An unchanged
    text is not a new revision (safe to run twice).
    """
    text = text.strip().replace("\r\n", "\n")
    if not text:
        raise InvalidGuideline("The guideline cannot be empty.")
    if len(text) > MAX_GUIDELINE_CHARS:
        raise InvalidGuideline(
            f"The guideline is {len(text):,} characters; the limit is {MAX_GUIDELINE_CHARS:,}."
        )
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if locked.guideline.strip() == text:
            return locked
        Project.objects.filter(pk=project.pk).update(
            guideline=text,
            guideline_revision=F("guideline_revision") + 1,
            guideline_revised_at=timezone.now(),
        )
        return Project.objects.get(pk=project.pk)
