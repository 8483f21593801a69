"""Scenario 7: two reviewers saving the same label at once, a state machine over claim / edit /
accept / undo, and thirty reviewers asking the queue for the next item at the same moment.

The HTTP tests run real clients (requests, one thread each) against gunicorn on PostgreSQL
(SQLite would serialise the writers and prove nothing): marked `postgres`, they run in
`make test`'s second pass, against PostgreSQL (tests/conftest.py).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from annotations.exceptions import EditConflict
from annotations.models import (
    Interaction,
    Label,
    LabelEvent,
    ReviewClaim,
)
from annotations.roles import Role
from annotations.services import labels as label_service
from annotations.tokens import issue_token
from tests.factories import (
    InteractionFactory,
    ModelVersionFactory,
    PredictionFactory,
    ProjectFactory,
    UserFactory,
)

LONG = os.environ.get("DDI_CHAOS_LONG") == "1"
EDIT_ROUNDS = 200 if LONG else 30
QUEUE_THREADS = 30
QUEUE_CALLS = 1_020 if LONG else 210  # a multiple of QUEUE_THREADS
# Figures for the README "Reliability" section are printed with -s.
FIGURES: dict[str, object] = {}


def _session(user) -> requests.Session:
    session = requests.Session()
    # One session per user and test: a second issue_token would revoke the first one's key.
    session.headers["Authorization"] = f"Token {issue_token(user)}"
    return session


# --- 7a: two reviewers PATCH the same label with the same If-Match -------------------------------


@pytest.mark.e2e
@pytest.mark.chaos
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_reviewers_saving_the_same_version_at_once_one_wins_one_conflicts(live_gunicorn):
    server = live_gunicorn().url  # gunicorn, 2 workers x 4 threads (tests/reliability/conftest.py)
    project = ProjectFactory(name="Concurrent edits")
    rita = UserFactory(username="rita", role=Role.REVIEWER)
    rob = UserFactory(username="rob", role=Role.REVIEWER)
    interaction = InteractionFactory(project=project)
    label = label_service.record_review(
        interaction=interaction, user=rita, label_class="Synergistic", expected_version=None
    )
    url = f"{server}/api/labels/{label.pk}/"
    clients = {"rita": _session(rita), "rob": _session(rob)}
    barrier = threading.Barrier(2)

    def save(name: str, label_class: str) -> tuple[str, int, int, dict]:
        session = clients[name]
        loaded = session.get(url, timeout=30)
        version = loaded.json()["version"]
        assert loaded.headers["ETag"] == f'"{version}"'
        barrier.wait(timeout=30)
        answer = session.patch(
            url, json={"label_class": label_class}, headers={"If-Match": f'"{version}"'}, timeout=30
        )
        return name, version, answer.status_code, answer.json()

    conflicts: Counter[int] = Counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        for round_no in range(EDIT_ROUNDS):
            events_before = LabelEvent.objects.filter(interaction=interaction).count()
            classes = ("Synergistic", "Antagonistic")[round_no % 2 :: 1] * 2
            results = list(pool.map(save, ["rita", "rob"], classes[:2]))
            statuses = sorted(status for _, _, status, _ in results)
            assert statuses[0] == 200 and statuses[1] in (409, 412), (round_no, results)
            assert results[0][1] == results[1][1], "both clients loaded the same version"
            winner = next(r for r in results if r[2] == 200)
            loser = next(r for r in results if r[2] != 200)
            conflicts[loser[2]] += 1
            current = Label.objects.get(pk=label.pk)
            assert current.version == winner[1] + 1 == winner[3]["version"]
            assert current.label_class == winner[3]["label_class"]
            assert current.author.username == winner[0]
            events = LabelEvent.objects.filter(interaction=interaction).order_by("id")
            assert events.count() == events_before + 1, "exactly one event per successful write"
            assert events.last().actor.username == winner[0]
            assert events.last().version == current.version
    assert Label.objects.get(pk=label.pk).version == 1 + EDIT_ROUNDS
    FIGURES["edit_rounds"] = EDIT_ROUNDS
    FIGURES["edit_conflicts"] = dict(conflicts)
    print(f"\nscenario 7a: {EDIT_ROUNDS} rounds, losers answered {dict(conflicts)}")


# --- 7c: thirty reviewers ask for the next item at once --------------------------------------------


@pytest.mark.e2e
@pytest.mark.chaos
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_thirty_reviewers_asking_for_the_next_item_never_get_the_same_one(live_gunicorn):
    server = live_gunicorn().url
    # The ordinary hand-out, one reviewer per item: no blind second opinions in this project
    # (their hand-out is tested in tests/annotations/test_blind_review.py).
    project = ProjectFactory(name="Queue handout", second_opinion_rate=0.0)
    Interaction.objects.bulk_create(
        InteractionFactory.build(project=project) for _ in range(QUEUE_CALLS + 20)
    )
    reviewers = [
        UserFactory(username=f"reviewer{i:02d}", role=Role.REVIEWER) for i in range(QUEUE_THREADS)
    ]
    sessions = [_session(user) for user in reviewers]
    next_url = f"{server}/api/projects/{project.pk}/queue/next/"
    labels_url = f"{server}/api/labels/"
    barrier = threading.Barrier(QUEUE_THREADS)
    calls_each = QUEUE_CALLS // QUEUE_THREADS

    def work(index: int) -> list[tuple[int, int | None, str]]:
        session = sessions[index]
        seen: list[tuple[int, int | None, str]] = []
        barrier.wait(timeout=60)
        for _ in range(calls_each):
            try:
                answer = session.post(next_url, json={}, timeout=60)
            except requests.ConnectionError as exc:
                seen.append((0, None, repr(exc)[:300]))
                continue
            if answer.status_code != 200:
                seen.append((answer.status_code, None, answer.text[:300]))
                continue
            item = answer.json()["interaction"]["id"]
            seen.append((200, item, ""))
            # The reviewer decides, which takes the item out of the queue for everyone.
            saved = session.post(
                labels_url, json={"interaction": item, "label_class": "Synergistic"}, timeout=60
            )
            if saved.status_code != 201:
                seen.append((saved.status_code, item, saved.text[:300]))
        return seen

    with ThreadPoolExecutor(max_workers=QUEUE_THREADS) as pool:
        per_reviewer = list(pool.map(work, range(QUEUE_THREADS)))

    answers = [answer for seen in per_reviewer for answer in seen]
    failures = [answer for answer in answers if answer[0] != 200]
    assert not failures, failures[:5]
    handed = [item for _, item, _ in answers]
    assert len(handed) == QUEUE_CALLS
    duplicates = [item for item, n in Counter(handed).items() if n > 1]
    assert not duplicates, f"handed to two reviewers: {duplicates[:10]}"
    owners = dict(
        Label.objects.filter(interaction__project=project).values_list(
            "interaction_id", "author__username"
        )
    )
    for index, seen in enumerate(per_reviewer):
        for _, item, _ in seen:
            assert owners[item] == f"reviewer{index:02d}"
    assert not ReviewClaim.objects.filter(interaction__project=project).exists()
    FIGURES["queue_calls"] = QUEUE_CALLS
    print(f"\nscenario 7c: {QUEUE_CALLS} next-item calls by {QUEUE_THREADS} reviewers, all unique")


# --- 7b: a state machine over claim / edit / accept / undo with two reviewers ----------------------

USERS = ("rita", "rob")
MACHINE_TOTALS: Counter[str] = Counter()
CLASSES = ("Synergistic", "Antagonistic")


class LabelingMachine(RuleBasedStateMachine):
    """Two reviewers, two interactions, the label service, and a model of what must be true.

    The model: per interaction the current value (class or None when no label), the count of
    accepted writes (every successful review, accept and undo), per reviewer the version they
    loaded last and their undo stack. Stale writes must conflict and change nothing.
    """

    def __init__(self):
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()  # each example runs in a savepoint that is rolled back
        project = self.project = ProjectFactory(name="State machine", label_classes=list(CLASSES))
        self.users = {
            name: UserFactory(username=f"sm-{name}", role=Role.REVIEWER) for name in USERS
        }
        self.items = [InteractionFactory(project=project) for _ in range(2)]
        version = ModelVersionFactory(project=project, is_active=True)
        for item, predicted in zip(self.items, CLASSES, strict=True):
            PredictionFactory(interaction=item, model_version=version, predicted_class=predicted)
        self.value: list[str | None] = [None, None]
        self.writes = [0, 0]
        self.exists = [False, False]
        self.loaded: dict[tuple[str, int], int | None] = {}
        self.undo_stack: dict[str, list[tuple[int, str | None, int]]] = {u: [] for u in USERS}
        self.holder: list[str | None] = [None, None]
        self.accepted = 0
        self.conflicts = 0

    def teardown(self):
        MACHINE_TOTALS.update(examples=1, accepted=self.accepted, conflicts=self.conflicts)
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    def _current_version(self, index: int) -> int | None:
        return self.writes[index] if self.exists[index] else None

    def _applied(self, user: str, index: int, new_value: str | None) -> None:
        old = self.value[index]
        self.writes[index] += 1
        self.value[index] = new_value
        self.exists[index] = new_value is not None
        self.undo_stack[user].append((index, old, self.writes[index]))
        if self.holder[index] == user:  # a saved decision frees the reviewer's lease
            self.holder[index] = None
        self.accepted += 1

    @rule(user=st.sampled_from(USERS), index=st.integers(0, 1))
    def load(self, user, index):
        label = Label.objects.filter(interaction=self.items[index]).first()
        self.loaded[(user, index)] = label.version if label else None

    @rule(user=st.sampled_from(USERS), index=st.integers(0, 1))
    def claim(self, user, index):
        got = label_service.claim_interaction(
            interaction_id=self.items[index].pk, user=self.users[user]
        )
        assert got == (self.holder[index] in (None, user))
        if got:
            self.holder[index] = user

    @precondition(lambda self: self.loaded)
    @rule(data=st.data(), label_class=st.sampled_from(CLASSES), accept=st.booleans())
    def save(self, data, label_class, accept):
        user, index = data.draw(st.sampled_from(sorted(self.loaded)))
        expected = self.loaded[(user, index)]
        interaction = Interaction.objects.select_related("project").get(pk=self.items[index].pk)
        should_win = expected == self._current_version(index)
        try:
            if accept:
                label_service.accept_prediction(
                    interaction=interaction, user=self.users[user], expected_version=expected
                )
                label_class = CLASSES[index]
            else:
                label_service.record_review(
                    interaction=interaction,
                    user=self.users[user],
                    label_class=label_class,
                    expected_version=expected,
                )
        except EditConflict:
            assert not should_win, "a write based on the current version was rejected"
            self.conflicts += 1
            return
        assert should_win, "a stale write was accepted"
        self._applied(user, index, label_class)

    @rule(user=st.sampled_from(USERS))
    def undo(self, user):
        stack = self.undo_stack[user]
        try:
            label_service.undo_last_action(user=self.users[user], project=self.project)
        except EditConflict:
            index, _, version_after = stack[-1]
            assert version_after != self.writes[index], "an undo of the current state was refused"
            self.conflicts += 1
            return
        if not stack:
            return
        index, old, version_after = stack.pop()
        assert version_after == self.writes[index], "undo applied over someone else's change"
        self.writes[index] += 1
        self.value[index] = old
        self.exists[index] = old is not None
        self.accepted += 1

    @invariant()
    def labels_match_the_model(self):
        for index, item in enumerate(self.items):
            label = Label.objects.filter(interaction=item).first()
            assert (label.label_class if label else None) == self.value[index]
            if label is not None:
                assert label.version == self.writes[index], "version == accepted writes"
            events = LabelEvent.objects.filter(interaction=item)
            assert events.count() == self.writes[index], "one event per accepted write"
            if self.writes[index]:
                assert events.order_by("-id").first().version == self.writes[index]
            claim = ReviewClaim.objects.filter(interaction=item).select_related("user").first()
            holder = claim.user.username.removeprefix("sm-") if claim else None
            assert holder == self.holder[index]


@pytest.mark.chaos
@pytest.mark.django_db
def test_label_writes_follow_the_model_under_any_interleaving_of_two_reviewers():
    run_state_machine_as_test(
        LabelingMachine,
        settings=settings(
            max_examples=300 if LONG else 12,
            stateful_step_count=25,
            deadline=None,
            derandomize=not LONG,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    assert MACHINE_TOTALS["accepted"] and MACHINE_TOTALS["conflicts"], "both paths exercised"
    print(f"\nscenario 7b: {dict(MACHINE_TOTALS)}")
