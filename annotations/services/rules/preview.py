"""Previewing a rule before it is saved: its matches on the project, page by page, with the active
version's predictions."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Min, OuterRef, Q, Subquery

from annotations.exceptions import InvalidRule
from annotations.models import Interaction, ModelVersion, Prediction, Project, Rule
from annotations.rule_matching import (
    RULE_MAX_MS_PER_ROW,
    CompiledRule,
    RuleMatcher,
)
from annotations.services.rules.patterns import check_class, sample_texts, validate_pattern

PREVIEW_EXAMPLES = 5


PREVIEW_PAGE_SIZE = 10


@dataclass(frozen=True)
class PreviewMatch:
    """One matched interaction on the preview page, with the active version's class."""

    interaction_id: int
    drug_a: str
    drug_b: str
    text: str  # the text the rule reads (blinded or raw)
    predicted_class: str | None


@dataclass(frozen=True)
class RulePreview:
    matches: int
    disagreements: int
    model_version: int | None
    examples: list[str]
    rows: list[PreviewMatch] = field(default_factory=list)  # this page of the matches
    page: int = 1
    page_size: int = PREVIEW_PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, -(-self.matches // self.page_size))

    @property
    def first_shown(self) -> int:
        return (self.page - 1) * self.page_size + 1 if self.rows else 0

    @property
    def last_shown(self) -> int:
        return self.first_shown + len(self.rows) - 1 if self.rows else 0


def preview_rule(
    *,
    project: Project,
    kind: str,
    field: str,
    pattern: str,
    label_class: str,
    page: int = 1,
    page_size: int = PREVIEW_PAGE_SIZE,
) -> RulePreview:
    """How many interactions the rule matches, and how many of those the active model labels
    differently. Read-only. Validates first, on the project's own texts as saving does (raises
    InvalidRule / InvalidLabelClass), then scans under the same cost guard as exports: a rule
    that goes over it is refused with InvalidRule instead of being counted.

    Blinded rules are matched once per distinct sentence pattern (GROUP BY pattern_hash) with
    their rows and disagreements counted in SQL; raw rules scan the descriptions in id order
    with each row's prediction alongside. No id lists are built (they fail past SQLite's
    variable limit on large projects). `rows` is page `page` of the matches (blinded: by
    sentence pattern, then id; raw: by id), each with the active version's class.
    """
    check_class(project, label_class)
    page = max(1, page)
    start, end = (page - 1) * page_size, page * page_size
    if field not in Rule.Field.values:
        raise InvalidRule(f"Unknown field {field!r}; use one of {', '.join(Rule.Field.values)}.")
    compiled = validate_pattern(kind=kind, pattern=pattern, samples=sample_texts(project, field))
    matcher = RuleMatcher([CompiledRule(None, field, label_class, 0, compiled)])
    model_version = ModelVersion.objects.active_for(project)
    interactions = Interaction.objects.filter(project=project)
    examples: list[str] = []
    matches = disagreements = 0
    if field == Rule.Field.BLINDED:
        disagree = Q(predictions__model_version=model_version) & ~Q(
            predictions__predicted_class=label_class
        )
        groups = (
            interactions.values("pattern_hash")
            .annotate(
                n=Count("id", distinct=True),
                text=Min("blinded_text"),
                disagree=Count("predictions", filter=disagree),
            )
            .order_by("pattern_hash")
        )
        windows: list[tuple[str, int, int]] = []  # (pattern_hash, skip, take) on this page
        for group in groups.iterator(chunk_size=2000):
            if matcher.first_match(
                blinded_text=group["text"], pattern_hash=group["pattern_hash"], description=""
            ):
                skip = max(0, start - matches)
                take = min(group["n"], end - matches) - skip
                if take > 0:
                    windows.append((group["pattern_hash"], skip, take))
                matches += group["n"]
                disagreements += group["disagree"]
                if len(examples) < PREVIEW_EXAMPLES:
                    examples.append(group["text"])
            _refuse_if_cut_off(matcher)
        rows = _preview_rows(interactions, model_version, windows)
    else:
        predicted = Prediction.objects.filter(
            interaction=OuterRef("pk"), model_version=model_version
        ).values("predicted_class")[:1]
        last_id = 0
        rows = []
        while True:
            batch = list(
                interactions.filter(id__gt=last_id)
                .annotate(predicted=Subquery(predicted))
                .order_by("id")
                .values_list("id", "description", "predicted", "drug_a", "drug_b")[:5000]
            )
            if not batch:
                break
            last_id = batch[-1][0]
            for pk, text, predicted_class, drug_a, drug_b in batch:
                if matcher.first_match(blinded_text="", pattern_hash="", description=text):
                    if start <= matches < end:
                        rows.append(PreviewMatch(pk, drug_a, drug_b, text, predicted_class))
                    matches += 1
                    if predicted_class is not None and predicted_class != label_class:
                        disagreements += 1
                    if len(examples) < PREVIEW_EXAMPLES:
                        examples.append(text)
                _refuse_if_cut_off(matcher)
    if model_version is None:
        disagreements = 0
    return RulePreview(
        matches=matches,
        disagreements=disagreements,
        model_version=model_version.number if model_version else None,
        examples=examples,
        rows=rows,
        page=page,
        page_size=page_size,
    )


def _preview_rows(interactions, model_version, windows) -> list[PreviewMatch]:
    """The page's matched rows of a blinded rule: at most page_size rows over a few patterns."""
    predicted = Prediction.objects.filter(
        interaction=OuterRef("pk"), model_version=model_version
    ).values("predicted_class")[:1]
    rows: list[PreviewMatch] = []
    for pattern_hash, skip, take in windows:
        found = (
            interactions.filter(pattern_hash=pattern_hash)
            .annotate(predicted=Subquery(predicted))
            .order_by("id")
            .values_list("id", "drug_a", "drug_b", "blinded_text", "predicted")[skip : skip + take]
        )
        rows.extend(PreviewMatch(*values) for values in found)
    return rows


def _refuse_if_cut_off(matcher: RuleMatcher) -> None:
    if matcher.cut_off:
        raise InvalidRule(
            f"The pattern costs more than {RULE_MAX_MS_PER_ROW} ms a row on this project's "
            "texts, so exports and the review queue would skip it; simplify it."
        )
