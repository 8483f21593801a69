"""Stored rule matches: each rule's pattern runs once per interaction, and the result is a row.

Exports, the queue's "model disagrees with a rule" filter, final labels and stats join
RuleMatch (see selectors/rules.py) instead of running regexes per request. Matches are written:

- when a rule is created or its pattern, kind or field changes (all of the project's rows);
- when a file is imported (the new rows, for every active rule), in the import's transaction;
- as a catch-up for rows a rule has not seen yet (ids above its `matched_through_id`: rows made
  outside an import, rules saved before matches were stored). Normally there are none.

Each pass runs under the same cost guard as before (RuleMatcher: MATCH_TIMEOUT_S a match,
RULE_MAX_MS_PER_ROW a row after a RULE_COST_GRACE_S grace). A rule that goes over it is marked
`is_too_costly`, keeps no matches and decides nothing (it used to be cut off per request, at a
point that depended on the machine's speed). Blinded-text rules run once per distinct sentence
pattern and their matches are inserted with INSERT ... SELECT; raw-text rules scan descriptions
in id batches. No id list grows with the project.
"""

from __future__ import annotations

import logging

from django.db import connection, transaction
from django.db.models import Max, Min, QuerySet

from annotations.models import ImportJob, Interaction, Project, Rule, RuleMatch
from annotations.rule_matching import CompiledRule, RuleMatcher, compile_rules

logger = logging.getLogger(__name__)

SCAN_BATCH = 5000
# Bound the SQL variables of one statement (SQLite builds may allow as few as 999; the tests
# lower the limit to 500): matched pattern hashes per INSERT ... SELECT, rows per bulk insert.
HASH_BATCH = 200
INSERT_BATCH = 200


def _insert_select(rule_id: int, rows: QuerySet[Interaction]) -> None:
    """INSERT (rule, interaction) for every row of `rows` in one statement, skipping existing.

    INSERT ... SELECT keeps a pattern matching 192k rows out of Python. The SQL text is the
    table name and Django's own compiled query; every value travels as a bound parameter.
    """
    sql, params = rows.values("id").query.sql_with_params()
    table = RuleMatch._meta.db_table
    insert = "INSERT OR IGNORE INTO" if connection.vendor == "sqlite" else "INSERT INTO"
    conflict = "" if connection.vendor == "sqlite" else " ON CONFLICT DO NOTHING"
    statement = f"{insert} {table} (rule_id, interaction_id) SELECT %s, id FROM ({sql}) AS m"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(statement + conflict, (rule_id, *params))


def _match_blinded(compiled: CompiledRule, matcher: RuleMatcher, rows: QuerySet) -> None:
    groups = rows.values("pattern_hash").annotate(text=Min("blinded_text")).order_by("pattern_hash")
    hashes: list[str] = []
    for group in groups.iterator(chunk_size=2000):
        hit = matcher.first_match(
            blinded_text=group["text"], pattern_hash=group["pattern_hash"], description=""
        )
        if matcher.cut_off:
            return
        if hit is not None:
            hashes.append(group["pattern_hash"])
        if len(hashes) >= HASH_BATCH:
            _insert_select(compiled.id, rows.filter(pattern_hash__in=hashes))
            hashes = []
    if hashes:
        _insert_select(compiled.id, rows.filter(pattern_hash__in=hashes))


def _match_raw(compiled: CompiledRule, matcher: RuleMatcher, rows: QuerySet) -> None:
    last_id = 0
    while True:
        batch = list(
            rows.filter(id__gt=last_id).order_by("id").values_list("id", "description")[:SCAN_BATCH]
        )
        if not batch:
            return
        last_id = batch[-1][0]
        found = [
            RuleMatch(rule_id=compiled.id, interaction_id=pk)
            for pk, text in batch
            if matcher.first_match(blinded_text="", pattern_hash="", description=text)
        ]
        if matcher.cut_off:
            return
        RuleMatch.objects.bulk_create(found, ignore_conflicts=True, batch_size=INSERT_BATCH)


def _match(rule: Rule, rows: QuerySet[Interaction]) -> bool:
    """Store `rule`'s matches among `rows`; False (and nothing kept) when it goes over budget."""
    matcher = compile_rules([rule])
    if not matcher.rules:  # an invalid pattern saved straight to the table
        return False
    compiled = matcher.rules[0]
    if rule.field == Rule.Field.BLINDED:
        _match_blinded(compiled, matcher, rows)
    else:
        _match_raw(compiled, matcher, rows)
    return not matcher.cut_off


def _mark_too_costly(rule: Rule) -> None:
    logger.warning("rule %s went over its cost budget; it stores no matches", rule.pk)
    RuleMatch.objects.filter(rule=rule).delete()
    Rule.objects.filter(pk=rule.pk).update(is_too_costly=True)
    rule.is_too_costly = True


def _top_id(project_id: int) -> int:
    return Interaction.objects.filter(project_id=project_id).aggregate(top=Max("id"))["top"] or 0


def refresh_rule_matches(*, rule: Rule) -> None:
    """Recompute all of `rule`'s stored matches (after its pattern, kind or field changed).

    Call inside the transaction that saves the rule, so readers never see the new pattern
    with the old matches. Safe to run twice (delete, then insert).
    """
    RuleMatch.objects.filter(rule=rule).delete()
    top = _top_id(rule.project_id)
    rule.is_too_costly = False
    rule.matched_through_id = top
    rows = Interaction.objects.filter(project_id=rule.project_id, id__lte=top)
    if _match(rule, rows):
        Rule.objects.filter(pk=rule.pk).update(is_too_costly=False, matched_through_id=top)
    else:
        Rule.objects.filter(pk=rule.pk).update(matched_through_id=top)
        _mark_too_costly(rule)


def catch_up_rule_matches(*, project: Project, also: QuerySet[Interaction] | None = None) -> int:
    """Match every active rule against the rows it has not seen (id above its watermark), and
    against `also` (an import's own rows: a concurrent import may have moved the watermark past
    them before they were committed). Returns how many rules had work. Safe to run twice.
    """
    rules = list(
        Rule.objects.select_for_update()
        .filter(project=project, is_active=True, is_too_costly=False)
        .order_by("id")
    )
    top = _top_id(project.pk)
    worked = 0
    for rule in rules:
        if rule.matched_through_id >= top and also is None:
            continue
        rows = Interaction.objects.filter(project=project, id__gt=rule.matched_through_id)
        if also is not None:
            rows = rows | also.filter(project=project)
        rows = rows.filter(id__lte=top)
        worked += 1
        if _match(rule, rows):
            Rule.objects.filter(pk=rule.pk).update(matched_through_id=top)
        else:
            _mark_too_costly(rule)
    return worked


def ensure_rule_matches(*, project: Project) -> None:
    """Bring the stored matches up to date before a read: one cheap query when they are (the
    usual case), a catch-up pass when interactions arrived outside an import."""
    top = _top_id(project.pk)
    stale = Rule.objects.filter(
        project=project, is_active=True, is_too_costly=False, matched_through_id__lt=top
    )
    if stale.exists():
        with transaction.atomic():
            catch_up_rule_matches(project=project)


def match_imported_interactions(*, job: ImportJob) -> None:
    """Store the active rules' matches for an import's rows (call inside the import's
    transaction, after its rows are written)."""
    catch_up_rule_matches(
        project=job.project, also=Interaction.objects.filter(import_job_id=job.pk)
    )
