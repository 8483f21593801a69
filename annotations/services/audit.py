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
) -> Audit:
    """Draw an audit of `size` rows labeled by `source` and queue them for blind review."""
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
    groups: dict[str, list[tuple[int, str, float | None, int | None]]] = defaultdict(list)
    for row in population:
        groups[_stratum_of(source, row[1], row[2])].append(row)
    keys = sorted(groups)
    sizes = [len(groups[k]) for k in keys]
    expected = [
        float(np.mean([1.0 - (c if c is not None else 0.5) for _, _, c, _ in groups[k]]))
        for k in keys
    ]
    allocation = audit_stats.allocate(sizes, expected, int(size))
    seed = secrets.randbits(32) if seed is None else int(seed)
    rng = np.random.default_rng(seed)
    items, strata = [], {}
    for key, take, err in zip(keys, allocation, expected, strict=True):
        # Pattern order (ties in random order): the systematic draw spreads over patterns.
        members = sorted(groups[key], key=lambda r: (patterns.get(r[0], ""), rng.random()))
        strata[key] = {"size": len(members), "sample": take, "expected_error": round(err, 6)}
        for position in audit_stats.systematic_sample(len(members), take, rng):
            interaction_id, shown, confidence, rule_id = members[position]
            items.append(
                AuditItem(
                    interaction_id=interaction_id,
                    stratum=key,
                    inclusion_probability=take / len(members),
                    shown_class=shown,
                    confidence=confidence,
                    rule_id=rule_id,
                )
            )
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
