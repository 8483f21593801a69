"""Blind audits: draw a stratified random sample of the unreviewed labels, record blind answers,
and set the project's auto-accept error rate. The statistics are in annotations/audit_stats.

An audit draws from the rows whose final label comes from one source (the model, or the rules),
as the final-label order resolves them at draw time. Each drawn row becomes an AuditItem (what
the model or rule said, its stratum and inclusion probability) linked to a blind review row
(ReviewTask of kind ``audit``, services/blind.py): the queue hands it to reviewers with the
model's and rules' answers hidden, and its answer (a Label with source ``audit``) is the audit's.
"""

from __future__ import annotations

import secrets
from collections import defaultdict

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotations import audit_stats
from annotations.exceptions import AuditCannotStart
from annotations.models import Audit, AuditItem, Interaction, Project, ReviewTask
from annotations.selectors.final_labels import FinalLabelFilters, iter_final_labels
from annotations.selectors.versions import get_serving_model_version
from annotations.services.blind import create_tasks

MAX_AUDIT_SIZE = 2000


def _population(project: Project, source: str) -> list[tuple[int, str, float | None, int | None]]:
    """(interaction id, shown class, confidence, rule id) of every row labeled by `source`."""
    filters = FinalLabelFilters(sources=frozenset({source}))
    return [
        (row.interaction_id, row.final_label, row.confidence, row.rule_id)
        for row in iter_final_labels(project=project, filters=filters)
    ]


def _stratum_of(source: str, shown_class: str, confidence: float | None) -> str:
    # Rules carry no confidence: their strata are per class only (band 0).
    band = audit_stats.band_of(confidence) if source == Audit.Source.MODEL and confidence else 0
    return audit_stats.stratum_key(shown_class, band)


def start_audit(
    *,
    project: Project,
    user: AbstractBaseUser | None,
    size: int = audit_stats.DEFAULT_AUDIT_SIZE,
    source: str = Audit.Source.MODEL,
    seed: int | None = None,
    by_pattern: bool = True,
) -> Audit:
    """Draw an audit of `size` rows labeled by `source` and queue them for blind review.

    `by_pattern`: take sentence patterns at least one sampling step large whole (one answer
    stands for their rows; audit_stats.plan_stratum). Off, every row is its own cluster: the
    plain stratified draw, which does not rest on the same-sentence assumption.
    """
    if source not in Audit.Source.values:
        raise AuditCannotStart(f"Unknown audit source {source!r}: choose 'model' or 'rule'.")
    if not 1 <= int(size) <= MAX_AUDIT_SIZE:
        raise AuditCannotStart(f"An audit draws between 1 and {MAX_AUDIT_SIZE} items, not {size}.")
    version = get_serving_model_version(project=project)
    if source == Audit.Source.MODEL and version is None:
        raise AuditCannotStart(
            "No model labels to audit yet: this project has no active model version with "
            "predictions. Train a model and pseudo-label first (Runs page)."
        )
    population = _population(project, source)
    if not population:
        what = "the model" if source == Audit.Source.MODEL else "a rule"
        raise AuditCannotStart(
            f"No rows to audit: no unreviewed row's final label comes from {what}."
        )
    patterns = dict(Interaction.objects.filter(project=project).values_list("id", "pattern_hash"))
    groups: dict[str, dict[str, list[tuple[int, str, float | None, int | None]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for row in population:  # stratum -> blinded-sentence cluster -> rows
        cluster = patterns.get(row[0], "") if by_pattern else str(row[0])
        groups[_stratum_of(source, row[1], row[2])][cluster].append(row)
    keys = sorted(groups)
    clusters = {k: sorted(groups[k].items()) for k in keys}
    sizes = [sum(len(rows) for _, rows in clusters[k]) for k in keys]
    expected = [_expected_error(clusters[k]) for k in keys]
    allocation = audit_stats.allocate(
        sizes, expected, int(size), clusters=[[len(rows) for _, rows in clusters[k]] for k in keys]
    )
    seed = secrets.randbits(32) if seed is None else int(seed)
    rng = np.random.default_rng(seed)
    items, strata = [], {}
    for key, total, take, err in zip(keys, sizes, allocation, expected, strict=True):
        plan = audit_stats.plan_stratum([len(rows) for _, rows in clusters[key]], take)
        whole = 0  # rows that items of patterns taken whole stand for
        for index, count in sorted(plan.items()):
            rows = clusters[key][index][1]
            # A one-row cluster taken with certainty is just a row drawn with probability 1
            # (only a census of the rest does that), so it stays in the random part.
            stands_for = len(rows) if len(rows) > 1 else None
            whole += stands_for or 0
            for position in rng.choice(len(rows), size=count, replace=False):
                items.append(_item(key, rows[int(position)], count / len(rows), stands_for))
        # The rest in pattern order (ties in random order): the systematic draw spreads over them.
        rest = [
            (patterns.get(row[0], ""), rng.random(), row)
            for index, (_, rows) in enumerate(clusters[key])
            if index not in plan
            for row in rows
        ]
        rest.sort(key=lambda entry: entry[:2])
        left = take - sum(plan.values())
        for position in audit_stats.systematic_sample(len(rest), left, rng):
            items.append(_item(key, rest[position][2], left / len(rest)))
        strata[key] = {
            "size": total,
            "sample": take,
            "expected_error": round(err, 6),
            "clusters": sum(len(clusters[key][i][1]) > 1 for i in plan),
            "cluster_rows": whole,
        }
    with transaction.atomic():
        audit = Audit.objects.create(
            project=project,
            source=source,
            requested_size=int(size),
            population=len(population),
            model_version=version,
            strata=strata,
            seed=seed,
            started_by=user if user is not None and user.is_authenticated else None,
        )
        for item in items:
            item.audit = audit
        AuditItem.objects.bulk_create(items)
        _queue_blind(audit)
    return audit


def _expected_error(clusters) -> float:
    """Mean 1 - confidence over a stratum's rows (0.5 where a row has none, as rules)."""
    confidences = [row[2] for _, rows in clusters for row in rows]
    return float(np.mean([1.0 - (c if c is not None else 0.5) for c in confidences]))


def _item(stratum: str, row, probability: float, cluster_rows: int | None = None) -> AuditItem:
    interaction_id, shown, confidence, rule_id = row
    return AuditItem(
        interaction_id=interaction_id,
        stratum=stratum,
        inclusion_probability=probability,
        shown_class=shown,
        confidence=confidence,
        rule_id=rule_id,
        cluster_rows=cluster_rows,
    )


def _queue_blind(audit: Audit) -> None:
    """Open a blind review row of kind audit for each item (an open one is reused) and link it."""
    items = list(audit.items.all())
    tasks = create_tasks(
        interaction_ids=[item.interaction_id for item in items],
        kind=ReviewTask.Kind.AUDIT,
        created_by=audit.started_by,
    )
    by_interaction = {task.interaction_id: task for task in tasks}
    for item in items:
        item.task = by_interaction.get(item.interaction_id)
    AuditItem.objects.bulk_update(items, ["task"])


def set_auto_accept_alpha(*, project: Project, alpha: float | str | None) -> Project:
    """Set (or, with None/blank, turn off) the project's auto-accept target error rate."""
    if alpha is None or (isinstance(alpha, str) and not alpha.strip()):
        project.auto_accept_alpha = None
    else:
        try:
            project.auto_accept_alpha = audit_stats.check_alpha(alpha)
        except audit_stats.AuditInputError as exc:
            raise AuditCannotStart(str(exc)) from exc
    project.save(update_fields=["auto_accept_alpha"])
    return project
