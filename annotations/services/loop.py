"""The review loop, simulated: pick items the way a strategy would, answer them from a reference,
retrain, pseudo-label, and score the final labels after every round.

Shared by `bench/loop.py` (an empty database, the DrugBank sample, three strategies compared) and
`manage.py loop` (a read-only preview against the live database). Every step goes through the
app's own code paths: the review queue selector picks the items, `services.labels.record_review`
writes the answers (as a user with the Reviewer role), `services.runs.start_retrain_run` +
`services.jobs.run_job_inline` train and pseudo-label (the promotion rule applies: a version that
is not promoted leaves the previous one active, so the next round's queue and the final labels
still come from the previous version), and `selectors.final_labels.iter_final_labels` resolves
the final labels that are scored.

The reference ("oracle") maps a blinded sentence pattern to a class: DrugBank sentences repeat a
few dozen patterns and the model only sees the blinded text, so one class per pattern is enough.
"""

from __future__ import annotations

import csv
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from django.db.models import Exists, OuterRef

from annotations.exceptions import DomainError, InvalidReferenceFile
from annotations.models import Interaction, Label, ModelVersion, Project, ReviewSkip, Run
from annotations.roles import Role
from annotations.selectors.final_labels import FinalLabelStats, iter_final_labels
from annotations.selectors.queue import (
    DEFAULT_PAGE_SIZE,
    QueueCursor,
    QueueFilters,
    get_review_queue_page,
)
from annotations.services.jobs.inline import run_job_inline
from annotations.services.jobs.starting import start_retrain_run
from annotations.services.labels import record_review, skip_interaction
from annotations.services.ml import forget_predictors

STRATEGIES = ("default", "random", "lowest-confidence")
SIMULATED_REVIEWER = "loop-simulated-reviewer"


# --- the reference ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """Blinded sentence pattern -> reference class; `source` says where it came from."""

    classes_by_pattern: dict[str, str]
    source: str

    def answer(self, interaction: Interaction) -> str | None:
        return self.classes_by_pattern.get(interaction.blinded_text)


def load_reference_csv(*, path: Path, project: Project) -> Reference:
    """Read a `pattern,label` CSV (other columns ignored); classes must be the project's."""
    path = Path(path)
    if not path.is_file():
        raise InvalidReferenceFile(f"reference file {path} does not exist")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"pattern", "label"} - set(reader.fieldnames or [])
        if missing:
            raise InvalidReferenceFile(
                f"{path.name}: needs the columns pattern,label "
                f"(missing: {', '.join(sorted(missing))})"
            )
        mapping = {}
        for line, row in enumerate(reader, start=2):
            if row["label"] not in project.label_classes:
                raise InvalidReferenceFile(
                    f"{path.name} line {line}: {row['label']!r} is not a class of project "
                    f"{project.name!r} (classes: {', '.join(project.label_classes)})"
                )
            mapping[row["pattern"]] = row["label"]
    return Reference(mapping, source=str(path))


def reference_from_current_labels(*, project: Project) -> Reference:
    """The project's own labels (seed, import and review; status labeled) as the oracle.

    Per blinded pattern, the majority class of its labeled interactions (ties: the class that
    comes first in project.label_classes). Patterns with no labeled interaction stay unknown:
    the simulated reviewer skips their items. Read-only.
    """
    votes: dict[str, Counter] = {}
    rows = Label.objects.filter(
        interaction__project=project, status=Label.Status.LABELED
    ).values_list("interaction__blinded_text", "label_class")
    for text, label_class in rows.iterator(chunk_size=5000):
        votes.setdefault(text, Counter())[label_class] += 1
    order = {name: i for i, name in enumerate(project.label_classes)}
    mapping = {
        text: min(counts, key=lambda c: (-counts[c], order.get(c, len(order))))
        for text, counts in votes.items()
    }
    return Reference(mapping, source=f"current labels of {project.name!r}")


# --- picking and answering ----------------------------------------------------------------------


def pick_items(
    *,
    project: Project,
    user: AbstractBaseUser,
    strategy: str,
    count: int,
    rng: random.Random,
) -> list[Interaction]:
    """The next `count` interactions a reviewer would get under `strategy`. Read-only.

    default: the review queue page exactly as the queue page shows it (default filters, default
    page size, pattern spread), page after page. lowest-confidence: the same selector in strict
    order (no spread). random: a uniform sample of the same pool (unreviewed, not skipped).
    """
    if strategy == "default":
        return _from_queue(project=project, user=user, count=count, spread=True)
    if strategy == "lowest-confidence":
        return _from_queue(project=project, user=user, count=count, spread=False)
    if strategy == "random":
        pool = list(
            Interaction.objects.filter(project=project)
            .exclude(Exists(Label.objects.filter(interaction_id=OuterRef("pk"))))
            .exclude(Exists(ReviewSkip.objects.filter(interaction_id=OuterRef("pk"), user=user)))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        chosen = sorted(rng.sample(pool, min(count, len(pool))))
        by_id = Interaction.objects.select_related("project").in_bulk(chosen)
        return [by_id[pk] for pk in chosen]
    raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")


def _from_queue(
    *, project: Project, user: AbstractBaseUser, count: int, spread: bool
) -> list[Interaction]:
    picked: list[Interaction] = []
    cursor: QueueCursor | None = None
    while len(picked) < count:
        page = get_review_queue_page(
            project=project,
            user=user,
            filters=QueueFilters(),
            cursor=cursor,
            page_size=DEFAULT_PAGE_SIZE,
            spread=spread,
        )
        picked.extend(item.interaction for item in page.items)
        if page.next_cursor is None:
            break
        cursor = QueueCursor.decode(page.next_cursor)
    return picked[:count]


def answer_items(
    *, items: list[Interaction], user: AbstractBaseUser, reference: Reference
) -> tuple[int, int]:
    """Review each item with the reference class through the label service; skip unknown ones.

    Returns (reviewed, skipped). Side effects: one Label + LabelEvent per reviewed item (the
    event records what the active model predicted), one ReviewSkip per skipped item.
    """
    reviewed = skipped = 0
    for interaction in items:
        label_class = reference.answer(interaction)
        if label_class is None:
            skip_interaction(interaction=interaction, user=user)
            skipped += 1
            continue
        current = Label.objects.filter(interaction=interaction).values_list("version", flat=True)
        record_review(
            interaction=interaction,
            user=user,
            label_class=label_class,
            expected_version=current.first(),
        )
        reviewed += 1
    return reviewed, skipped


def get_simulated_reviewer() -> AbstractBaseUser:
    """The simulated reviewer account (Reviewer role, unusable password). Safe to run twice."""
    user, created = get_user_model().objects.get_or_create(username=SIMULATED_REVIEWER)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    user.groups.add(Group.objects.get(name=Role.REVIEWER.value))
    return user


# --- training -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Training:
    """What one retrain did: the version it made and whether it became active."""

    version: int | None
    promoted: bool
    decision: str
    macro_f1: float | None
    active_version: int | None
    state: str


def retrain(*, project: Project, user: AbstractBaseUser | None, params: dict) -> Training:
    """Retrain through the run service and run it here (train, then pseudo-label if promoted).

    A version that is not promoted (validation macro-F1 below the active one's) leaves the
    active version and its predictions in place. Raises DomainError when the run fails.
    """
    run = start_retrain_run(project=project, user=user, params=params, enqueue=False)
    run = run_job_inline(run_id=run.pk)
    if run.state != Run.State.SUCCEEDED:
        raise DomainError(f"retrain run {run.pk} ended {run.state}: {run.error}")
    result = run.result or {}
    active = ModelVersion.objects.active_for(project)
    return Training(
        version=result.get("model_version_number"),
        promoted=bool(result.get("promoted")),
        decision=result.get("promotion_decision", ""),
        macro_f1=result.get("macro_f1"),
        active_version=active.number if active else None,
        state=run.state,
    )


@contextmanager
def artifacts_in(folder: Path) -> Iterator[Path]:
    """Point settings.DDI_ARTIFACTS_DIR at `folder` inside the block (restored afterwards).

    The training service reads the setting at call time; a process-wide swap is fine for a
    command or a benchmark (single-threaded), never for the web app.
    """
    previous = settings.DDI_ARTIFACTS_DIR
    settings.DDI_ARTIFACTS_DIR = Path(folder)
    try:
        yield Path(folder)
    finally:
        settings.DDI_ARTIFACTS_DIR = previous


# --- scoring ------------------------------------------------------------------------------------


@dataclass
class Score:
    """Final labels vs the reference over the rows whose pattern the reference knows."""

    rows: int = 0
    correct: int = 0
    macro_f1: float = 0.0
    not_covered: int = 0  # rows whose pattern the reference does not know (not scored)
    by_source: Counter = field(default_factory=Counter)
    # pattern -> [rows, correct, reference class, most common final label]
    per_pattern: dict[str, list] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.correct / self.rows if self.rows else 0.0

    @property
    def wrong(self) -> int:
        return self.rows - self.correct


def score_final_labels(*, project: Project, reference: Reference) -> Score:
    """Accuracy and macro-F1 of the final labels (review > seed > rule > model). Read-only.

    A row with no final label at all (no model yet) counts as wrong.
    """
    from sklearn.metrics import f1_score

    texts = dict(
        Interaction.objects.filter(project=project).values_list("pk", "blinded_text").iterator()
    )
    final: dict[int, str] = {}
    stats = FinalLabelStats()
    for row in iter_final_labels(project=project, stats=stats):
        final[row.interaction_id] = row.final_label
    score = Score(by_source=Counter(stats.by_source))
    truth, predicted = [], []
    tallies: dict[str, Counter] = {}
    for pk, text in texts.items():
        expected = reference.classes_by_pattern.get(text)
        if expected is None:
            score.not_covered += 1
            continue
        got = final.get(pk, "")
        score.rows += 1
        score.correct += got == expected
        truth.append(expected)
        predicted.append(got)
        tallies.setdefault(text, Counter())[got] += 1
        entry = score.per_pattern.setdefault(text, [0, 0, expected, ""])
        entry[0] += 1
        entry[1] += got == expected
    for text, counts in tallies.items():
        score.per_pattern[text][3] = counts.most_common(1)[0][0]
    if truth:
        labels = sorted(set(truth) | (set(predicted) - {""}))
        score.macro_f1 = float(f1_score(truth, predicted, labels=labels, average="macro"))
    return score


# --- the loop -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundResult:
    """One round of one strategy (round 0: before any review)."""

    strategy: str
    round: int
    reviews: int  # simulated reviews so far
    skipped: int
    score: Score
    training: Training | None


def run_round(
    *,
    project: Project,
    user: AbstractBaseUser,
    strategy: str,
    per_round: int,
    reference: Reference,
    params: dict,
    rng: random.Random,
) -> tuple[int, int, Training]:
    """Pick, answer, retrain (+ pseudo-label when promoted). Returns (reviewed, skipped, training).

    Side effects: labels, events and skips by `user`, a retrain run, a model version and (when
    promoted) its predictions. Not idempotent: every call is one more round.
    """
    items = pick_items(project=project, user=user, strategy=strategy, count=per_round, rng=rng)
    reviewed, skipped = answer_items(items=items, user=user, reference=reference)
    training = retrain(project=project, user=user, params=params)
    return reviewed, skipped, training


def simulate(
    *,
    project: Project,
    strategy: str,
    rounds: int,
    per_round: int,
    reference: Reference,
    params: dict | None = None,
    seed: int = 0,
    user: AbstractBaseUser | None = None,
    on_round: Callable[[RoundResult], None] | None = None,
) -> list[RoundResult]:
    """Round 0 score, then `rounds` rounds of `per_round` simulated reviews each.

    Needs an active model version (train and pseudo-label first). Writes to the database (see
    run_round); `preview_loop` wraps it in a transaction that is rolled back.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    user = user or get_simulated_reviewer()
    rng = random.Random(seed)
    results = [
        RoundResult(
            strategy, 0, 0, 0, score_final_labels(project=project, reference=reference), None
        )
    ]
    if on_round:
        on_round(results[0])
    reviews = skips = 0
    for number in range(1, rounds + 1):
        reviewed, skipped, training = run_round(
            project=project,
            user=user,
            strategy=strategy,
            per_round=per_round,
            reference=reference,
            params=dict(params or {}),
            rng=rng,
        )
        reviews += reviewed
        skips += skipped
        result = RoundResult(
            strategy,
            number,
            reviews,
            skips,
            score_final_labels(project=project, reference=reference),
            training,
        )
        results.append(result)
        if on_round:
            on_round(result)
    return results


def preview_loop(
    *,
    project: Project,
    strategy: str,
    rounds: int,
    per_round: int,
    reference: Reference,
    params: dict | None = None,
    seed: int = 0,
    on_round: Callable[[RoundResult], None] | None = None,
) -> list[RoundResult]:
    """`simulate` against live data without keeping anything: read-only for the database.

    Everything (the simulated reviewer account, labels, events, runs, versions, predictions)
    happens inside one transaction that is rolled back, even on success; model artifacts go to
    a temporary folder that is deleted. While it runs, the transaction holds row locks on what
    it wrote (a real reviewer saving one of the same items, or a real training run, waits until
    the preview ends; on SQLite the whole database is write-locked), so run it at a quiet time.
    """
    if ModelVersion.objects.active_for(project) is None:
        raise DomainError(
            f"project {project.name!r} has no active model version: train one before a preview"
        )
    folder = Path(tempfile.mkdtemp(prefix="ddi-loop-"))
    results: list[RoundResult] = []
    try:
        with artifacts_in(folder), transaction.atomic():
            results = simulate(
                project=project,
                strategy=strategy,
                rounds=rounds,
                per_round=per_round,
                reference=reference,
                params=params,
                seed=seed,
                on_round=on_round,
            )
            transaction.set_rollback(True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        forget_predictors(folder)
    return results
