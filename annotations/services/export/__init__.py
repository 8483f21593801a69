"""Export final labels as CSV, JSONL or Parquet, streaming, plus a dataset card.

`stream_export` is the one entry point for the web/API download (a generator of byte chunks
for StreamingHttpResponse); `write_export` writes a file and its card for `manage.py export`.
Both read through selectors.final_labels.iter_final_labels: keyset batches, flat memory.
Same data and filters -> same bytes (rows in id order, no generation timestamp anywhere).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from annotations.exceptions import InvalidExportFilter
from annotations.final_label_order import SOURCES
from annotations.models import Project
from annotations.selectors.final_labels import (
    FinalLabelFilters,
    FinalLabelStats,
    iter_final_labels,
)
from annotations.selectors.team import get_team_answers
from annotations.selectors.versions import get_serving_model_version
from annotations.services.export.card import build_card, card_json, card_markdown
from annotations.services.export.writers import CONTENT_TYPES, FORMATS, WRITERS, columns_for

# Footer key of the dataset card (JSON) inside an exported Parquet file.
PARQUET_CARD_KEY = "ddi_curate.dataset_card"

__all__ = [
    "CONTENT_TYPES",
    "FORMATS",
    "ExportResult",
    "build_export_card",
    "columns_for",
    "filters_from_query",
    "make_filters",
    "stream_export",
    "write_export",
]


def make_filters(
    *,
    project: Project,
    min_confidence: float | None = None,
    sources: list[str] | None = None,
    reviewed_only: bool = False,
    classes: list[str] | None = None,
    auto_accepted: bool = False,
) -> FinalLabelFilters:
    """Validate user-supplied filter values against the project; raise InvalidExportFilter.

    `auto_accepted` keeps, of the model-labeled rows, only those auto-accepted at the project's
    target error rate (per-class thresholds from its latest audit; see selectors/audit.py).
    """
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise InvalidExportFilter(f"min_confidence must be between 0 and 1, not {min_confidence}.")
    if sources:
        unknown = sorted(set(sources) - set(SOURCES))
        if unknown:
            raise InvalidExportFilter(
                f"Unknown source(s) {', '.join(unknown)}; use: {', '.join(SOURCES)}."
            )
    if classes:
        unknown = sorted(set(classes) - set(project.label_classes))
        if unknown:
            raise InvalidExportFilter(
                f"Unknown class(es) {', '.join(unknown)}; {project.name} has: "
                f"{', '.join(project.label_classes)}."
            )
    return FinalLabelFilters(
        min_confidence=min_confidence,
        sources=frozenset(sources) if sources else None,
        reviewed_only=reviewed_only,
        classes=frozenset(classes) if classes else None,
        auto_accepted=_auto_accept_filter(project) if auto_accepted else None,
    )


def _auto_accept_filter(project: Project) -> tuple[float, tuple[tuple[str, float], ...]]:
    from annotations.selectors.audit import get_auto_accept

    accept = get_auto_accept(project=project)
    if accept is None:
        raise InvalidExportFilter(
            "Auto-accept is off for this project: set a target error rate on the Audit page."
        )
    return accept.alpha, tuple(sorted(accept.threshold_map().items()))


def filters_from_query(*, project: Project, query: dict) -> FinalLabelFilters:
    """make_filters from a validated form/serializer/command dict (missing keys: defaults)."""
    return make_filters(
        project=project,
        min_confidence=query.get("min_confidence"),
        sources=query.get("sources") or None,
        reviewed_only=bool(query.get("reviewed_only")),
        classes=query.get("classes") or None,
        auto_accepted=bool(query.get("auto_accepted")),
    )


def _check_format(export_format: str) -> None:
    if export_format not in FORMATS:
        raise InvalidExportFilter(f"Unknown format {export_format!r}; use: {', '.join(FORMATS)}.")


def stream_export(
    *,
    project: Project,
    export_format: str,
    filters: FinalLabelFilters,
    stats: FinalLabelStats | None = None,
    batch_size: int | None = None,
) -> Iterator[bytes]:
    """Byte chunks of the export file. Read-only; safe to run any number of times."""
    _check_format(export_format)
    kwargs = {"batch_size": batch_size} if batch_size else {}
    stats = stats if stats is not None else FinalLabelStats()
    rows = iter_final_labels(project=project, filters=filters, stats=stats, **kwargs)
    classes = list(project.label_classes)
    if export_format == "jsonl":
        return WRITERS[export_format](rows, classes, team=get_team_answers)
    if export_format != "parquet":
        return WRITERS[export_format](rows, classes)

    def card_metadata() -> dict[str, str]:
        # The Parquet file carries its own dataset card (counted over the rows just written).
        card = _card_of(project, filters, stats, export_format)
        return {PARQUET_CARD_KEY: card_json(card)}

    return WRITERS[export_format](rows, classes, footer_metadata=card_metadata)


def _card_of(
    project: Project, filters: FinalLabelFilters, stats: FinalLabelStats, export_format
) -> dict:
    """The card of the rows `stats` counted, with the model version whose predictions they use."""
    return build_card(
        project=project,
        filters=filters,
        stats=stats,
        model_version=get_serving_model_version(project=project),
        export_format=export_format,
    )


def build_export_card(
    *, project: Project, filters: FinalLabelFilters, export_format: str | None = None
) -> dict:
    """The dataset card for an export with these filters (one full counting pass)."""
    stats = FinalLabelStats()
    for _ in iter_final_labels(project=project, filters=filters, stats=stats):
        pass
    return _card_of(project, filters, stats, export_format)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    card_markdown_path: Path
    card_json_path: Path
    stats: FinalLabelStats
    card: dict


def write_export(
    *,
    project: Project,
    export_format: str,
    filters: FinalLabelFilters,
    out: Path,
    on_progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Write the export to `out` plus `<out>.card.md` / `<out>.card.json`.

    Each file is written to a temporary name and renamed into place, so a crash never leaves a
    truncated export under the final name. Running it twice overwrites with identical bytes.
    """
    _check_format(export_format)
    stats = FinalLabelStats()
    out = Path(out)
    tmp = out.with_name(f".{out.name}.partial")
    with open(tmp, "wb") as handle:
        for chunk in stream_export(
            project=project, export_format=export_format, filters=filters, stats=stats
        ):
            handle.write(chunk)
            if on_progress is not None:
                on_progress(stats.scanned)
    os.replace(tmp, out)
    card = _card_of(project, filters, stats, export_format)
    md_path = out.with_name(out.name + ".card.md")
    json_path = out.with_name(out.name + ".card.json")
    for path, text in ((md_path, card_markdown(card)), (json_path, card_json(card))):
        part = path.with_name(f".{path.name}.partial")
        part.write_text(text, encoding="utf-8")
        os.replace(part, path)
    return ExportResult(out, md_path, json_path, stats, card)
