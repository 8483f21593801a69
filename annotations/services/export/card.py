"""The dataset card: what an export contains and how it was made (JSON and Markdown).

Reproducible like the data: the card's date is `data_as_of`, the latest change to anything the
export reads (interactions, labels, rules, the model version), not the time it was generated.
Exporting unchanged data twice gives byte-identical cards.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from django.db.models import Max

from annotations.models import Audit, AuditItem, Interaction, Label, ModelVersion, Project, Rule
from annotations.selectors.agreement import get_agreement_report
from annotations.selectors.audit import get_audit_summary, get_auto_accept
from annotations.selectors.final_labels import FinalLabelFilters, FinalLabelStats
from annotations.services.export.writers import columns_for

RESOLUTION_ORDER = [
    "review: a reviewer's label (status labeled)",
    "seed: a seed or imported label",
    "rule: the highest-priority active rule that matches",
    "model: the active model version's prediction",
]
COLUMN_DOCS = {
    "interaction_id": "id of the interaction in ddi-curate",
    "final_label": "the resolved class",
    "source": "review | seed | rule | model (see resolution_order)",
    "confidence": (
        "the calibrated probability that the predicted class is right (when the model version "
        "predicted the row; not the softmax: see the README, 'Confidence, what it means')"
    ),
    "model_version": "number of the model version whose probabilities are given",
    "rule_id": "id of the rule that decided the label (source=rule)",
    "reviewer": "username of the reviewer (review labels and unclear flags)",
    "reviewed_at": "time of the review (UTC, ISO 8601)",
    "flagged_unclear": "a reviewer flagged the row unclear; it fell through to rule/model",
    "label_source": "how the stored label was made: seed | import | review | audit | "
    "adjudication (empty: no label; source says what decided the final label)",
    "note": "the note stored with the label (a reviewer says why a row is unclear)",
    "source_file": "the file the interaction was imported from",
    "source_line": "its line in that file",
    "import_id": "id of the import (ImportJob) that added the interaction",
    "p_<class>": (
        "the model's probability of each class: the committee's mean, combined with a labeled "
        "mirror sentence's class where there is one; a sentence labeled in training gets its "
        "label's class at the version's in-sample accuracy"
    ),
}


def data_as_of(*, project: Project, model_version: ModelVersion | None) -> datetime | None:
    """The latest change to the data an export of `project` reads."""
    stamps = [
        Interaction.objects.filter(project=project).aggregate(t=Max("created_at"))["t"],
        Label.objects.filter(interaction__project=project).aggregate(t=Max("updated_at"))["t"],
        Rule.objects.filter(project=project).aggregate(t=Max("updated_at"))["t"],
        Audit.objects.filter(project=project).aggregate(t=Max("created_at"))["t"],
        AuditItem.objects.filter(audit__project=project).aggregate(t=Max("task__answered_at"))["t"],
    ]
    if model_version is not None:
        stamps += [model_version.created_at, model_version.promoted_at]
    stamps = [s for s in stamps if s is not None]
    return max(stamps) if stamps else None


def build_card(
    *,
    project: Project,
    filters: FinalLabelFilters,
    stats: FinalLabelStats,
    model_version: ModelVersion | None,
    export_format: str | None = None,
) -> dict:
    """The card as a JSON-ready dict (stable key order). Read-only."""
    as_of = data_as_of(project=project, model_version=model_version)
    rules = Rule.objects.filter(project=project, is_active=True, is_too_costly=False).order_by(
        "-priority", "id"
    )
    too_costly = Rule.objects.filter(project=project, is_active=True, is_too_costly=True)
    accept = get_auto_accept(project=project)
    total = stats.rows or 1
    return {
        "project": project.name,
        "format": export_format,
        "data_as_of": as_of.astimezone(UTC).isoformat() if as_of else None,
        "rows": stats.rows,
        "classes": list(project.label_classes),
        "class_balance": {
            name: {
                "count": stats.by_class.get(name, 0),
                "fraction": round(stats.by_class.get(name, 0) / total, 6),
            }
            for name in project.label_classes
        },
        "sources": dict(stats.by_source),
        "flagged_unclear": stats.flagged_unclear,
        "excluded": {"unlabeled": stats.unlabeled, "by_filters": stats.filtered_out},
        "filters": filters.as_dict(),
        "resolution_order": RESOLUTION_ORDER,
        "model_version": None
        if model_version is None
        else {
            "number": model_version.number,
            "backbone": model_version.backbone,
            "metrics": model_version.metrics,
            "n_train_examples": model_version.n_train_examples,
            "trained_at": model_version.created_at.astimezone(UTC).isoformat(),
        },
        "rules": [
            {
                "id": r.id,
                "name": r.name,
                "kind": r.kind,
                "field": r.field,
                "pattern": r.pattern,
                "label_class": r.label_class,
                "priority": r.priority,
            }
            for r in rules
        ],
        # Active but too costly to match: they decide nothing (annotations/rule_matches.py).
        "rules_too_costly": [
            {"id": r.id, "name": r.name, "pattern": r.pattern} for r in too_costly
        ],
        "audit": _audit_section(project),
        "auto_accept": None if accept is None else accept.as_dict(),
        # Between reviewers (second opinions, audits): see selectors/agreement.py.
        "team_agreement": get_agreement_report(project=project).as_dict(),
        "columns": columns_for(project.label_classes),
        "column_docs": COLUMN_DOCS,
    }


def _audit_section(project: Project) -> dict:
    """The latest audit's estimate per source (the same numbers the dashboard shows)."""
    out = {}
    for source in Audit.Source.values:
        summary = get_audit_summary(project=project, source=source)
        out[source] = None if summary is None else summary.as_dict()
    return out


def _pct(value) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _audit_markdown(card: dict) -> list[str]:
    lines = ["", "## Accuracy of the unreviewed labels (blind audit)", ""]
    audits = card.get("audit") or {}
    if not any(audits.values()):
        lines.append("No audit yet: nothing is known about the unreviewed labels' accuracy.")
    for source, summary in audits.items():
        if summary is None:
            continue
        acc = summary["accuracy"]
        stale = f" (STALE: {_md(summary['stale_reason'])})" if summary["stale"] else ""
        lines.append(
            f"- {source} labels: estimated accuracy {_pct(acc['value'])} (95 % interval "
            f"{_pct(acc['low'])} to {_pct(acc['high'])}), from {summary['answered']} of "
            f"{summary['drawn']} audited items over {summary['population']} rows; audit "
            f"{summary['audit_id']} of {summary['date']}, model version "
            f"{summary['model_version'] or 'n/a'}{stale}"
        )
        if summary.get("pattern_items"):
            lines.append(
                f"  - {summary['pattern_items']} items stand for their whole sentence pattern "
                f"({summary['pattern_rows']} rows): {summary['pattern_assumption']}"
            )
        for name, est in summary["per_class"].items():
            lines.append(
                f"  - {_md(name)}: {_pct(est['value'])} ({_pct(est['low'])} to "
                f"{_pct(est['high'])}, {est['audited']} audited)"
            )
    accept = card.get("auto_accept")
    if accept:
        lines += [
            "",
            f"Auto-accept at alpha = {accept['alpha']}: {accept['rows_accepted']} of "
            f"{accept['rows']} model-labeled rows accepted ({accept['share_accepted'] * 100:.1f} %)"
            f"{'; ' + _md(accept['reason']) if accept['reason'] else ''}.",
            *(
                f"- {_md(name)}: confidence >= {t}" if t is not None else f"- {_md(name)}: none"
                for name, t in accept["thresholds"].items()
            ),
            f"- Guarantee: {accept['assumption']}",
        ]
    return lines


def card_json(card: dict) -> str:
    return json.dumps(card, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def _md(text: object) -> str:
    # Card values come from users (project, rule names, patterns): keep them inert in Markdown.
    return str(text).replace("|", "\\|").replace("\n", " ").replace("`", "'")


def _coefficient(c: dict) -> str:
    if c["value"] is None:
        text = "n/a"
    else:
        low, high = c["ci95"]
        interval = f" (95% CI {low:.2f} to {high:.2f})" if low is not None else ""
        text = f"{c['value']:.3f}{interval}"
    notes = "; ".join(c["warnings"])
    return f"{text} on {c['items']} items" + (f" (warning: {notes})" if notes else "")


def _agreement_lines(report: dict | None) -> list[str]:
    if not report or not report["krippendorff_alpha"]["items"]:
        return ["No item has two reviewers' answers yet."]
    lines = [f"- Krippendorff's alpha (nominal): {_coefficient(report['krippendorff_alpha'])}"]
    for pair in report["cohen_kappa_per_pair"]:
        who = " / ".join(_md(name) for name in pair["reviewers"])
        lines.append(f"- Cohen's kappa {who}: {_coefficient(pair)}")
    for row in report["agreement_with_adjudication"]:
        lines.append(
            f"- {_md(row['reviewer'])} agrees with the adjudicated label on "
            f"{row['agreed']} of {row['items']} adjudicated items"
        )
    for rev in report["by_guideline_revision"]:
        lines.append(
            f"- Guideline revision {rev['revision']}: alpha "
            f"{_coefficient(rev['krippendorff_alpha'])}"
        )
    return lines


def card_markdown(card: dict) -> str:
    """Render the card as Markdown."""
    lines = [
        f"# Dataset card: {_md(card['project'])}",
        "",
        f"- Rows: {card['rows']}",
        f"- Data as of: {card['data_as_of'] or 'n/a'}",
        f"- Format: {card['format'] or 'any'}",
        f"- Flagged unclear by a reviewer: {card['flagged_unclear']}",
        f"- Excluded: {card['excluded']['unlabeled']} without any label, "
        f"{card['excluded']['by_filters']} by the filters",
        "",
        "## Class balance",
        "",
        "| class | rows | fraction |",
        "|---|---:|---:|",
        *(
            f"| {_md(name)} | {v['count']} | {v['fraction']:.4f} |"
            for name, v in card["class_balance"].items()
        ),
        "",
        "## Sources",
        "",
        "| source | rows |",
        "|---|---:|",
        *(f"| {name} | {count} |" for name, count in card["sources"].items()),
        "",
        "Resolution order (first that applies wins):",
        "",
        *(f"{i}. {step}" for i, step in enumerate(card["resolution_order"], 1)),
        "",
        "## Filters",
        "",
        *(f"- {name}: {_md(value)}" for name, value in card["filters"].items()),
        "",
        "## Model version",
        "",
    ]
    mv = card["model_version"]
    if mv is None:
        lines.append("No active model version.")
    else:
        lines += [
            f"- Number: {mv['number']}",
            f"- Backbone: {_md(mv['backbone'])}",
            f"- Trained on: {mv['n_train_examples']} examples, at {mv['trained_at']}",
            f"- Metrics: `{_md(json.dumps(mv['metrics'], sort_keys=True))}`",
        ]
    lines += ["", "## Agreement between reviewers", ""]
    lines += _agreement_lines(card.get("team_agreement"))
    lines += ["", "## Active rules", ""]
    if not card["rules"]:
        lines.append("None.")
    for rule in card["rules"]:
        lines.append(
            f"- #{rule['id']} {_md(rule['name'])} ({rule['kind']} on {rule['field']} text, "
            f"priority {rule['priority']}): `{_md(rule['pattern'])}` -> {_md(rule['label_class'])}"
        )
    for rule in card.get("rules_too_costly") or []:
        lines.append(
            f"- #{rule['id']} {_md(rule['name'])}: too costly to match, decides nothing "
            f"(`{_md(rule['pattern'])}`)"
        )
    lines += _audit_markdown(card)
    lines += ["", "## Columns", ""]
    lines += [f"- `{_md(name)}`: {_md(doc)}" for name, doc in card["column_docs"].items()]
    return "\n".join(lines) + "\n"
