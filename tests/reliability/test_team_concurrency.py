"""Team review under concurrency (PostgreSQL): curators deciding one adjudication at once, and
reviewers asking for the next blind review at once."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from rest_framework.test import APIClient

from annotations.models import Label, LabelEvent, ReviewTask
from annotations.roles import Role
from annotations.services import blind, labels
from tests.annotations.test_adjudication import _again, _disagreement
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _decide_at_once(call) -> int:
    url, version, barrier, user, label_class = call
    try:
        barrier.wait(timeout=30)
        body = {"label_class": label_class, "version": version}
        return _api(user).post(url, body, format="json").status_code
    finally:
        connection.close()  # each thread has its own database connection


@pytest.mark.django_db(transaction=True)
def test_two_curators_deciding_at_once_one_wins_one_gets_a_conflict(project):
    rita = UserFactory(username="rita", role=Role.REVIEWER)
    rob = UserFactory(username="rob", role=Role.REVIEWER)
    curators = [UserFactory(username=n, role=Role.CURATOR) for n in ("carl", "cleo")]
    rounds = 10
    outcomes = []
    for round_no in range(rounds):
        adjudication = (
            _disagreement(project, rita, rob) if round_no == 0 else _again(project, rita, rob)
        )
        version = Label.objects.get(interaction=adjudication.interaction).version
        url = f"/api/adjudications/{adjudication.pk}/decide/"
        barrier = threading.Barrier(2)
        calls = [
            (url, version, barrier, curators[0], "Synergistic"),
            (url, version, barrier, curators[1], "Antagonistic"),
        ]
        with ThreadPoolExecutor(max_workers=2) as pool:
            codes = sorted(pool.map(_decide_at_once, calls))
        outcomes.append(codes)
        assert codes[0] == 200 and codes[1] in (409, 412), codes
        assert (
            LabelEvent.objects.filter(
                interaction=adjudication.interaction, action="adjudicate"
            ).count()
            == 1
        )
    print(f"\n{rounds} rounds of two curators deciding at once: {outcomes[0]} each time")


def _decide_at_once(call) -> int:
    url, version, barrier, user, label_class = call
    try:
        barrier.wait(timeout=30)
        body = {"label_class": label_class, "version": version}
        return _api(user).post(url, body, format="json").status_code
    finally:
        connection.close()  # each thread has its own database connection


def _next_at_once(call) -> tuple[str, int | None]:
    url, barrier, user = call
    try:
        barrier.wait(timeout=30)
        response = _api(user).post(url, {}, format="json")
        if response.status_code != 200:
            return user.username, None
        task = response.json()["blind_task"]
        return user.username, task["id"] if task else None
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_reviewers_asking_at_once_never_share_a_blind_review_and_never_get_their_own(project):
    """Ten reviewers each review two items; then all ask for their next item at once, twice:
    every blind row goes to one person only, never to its first reviewer."""
    project.second_opinion_rate = 1.0
    project.save()
    version = ModelVersionFactory(project=project, is_active=True)
    reviewers = [UserFactory(username=f"rev{i}", role=Role.REVIEWER) for i in range(10)]
    for reviewer in reviewers:
        for _ in range(2):
            item = InteractionFactory(project=project)
            PredictionFactory(interaction=item, model_version=version)
            labels.record_review(
                interaction=item, user=reviewer, label_class="Synergistic", expected_version=None
            )
    url = f"/api/projects/{project.pk}/queue/next/"
    handed: list[tuple[str, int]] = []
    for _ in range(2):
        barrier = threading.Barrier(len(reviewers))
        with ThreadPoolExecutor(max_workers=len(reviewers)) as pool:
            got = list(pool.map(_next_at_once, [(url, barrier, r) for r in reviewers]))
        for username, task_id in got:
            if task_id is None:
                # Only possible when every row still open is on this reviewer's own items.
                own = ReviewTask.objects.filter(answered_at__isnull=True).exclude(
                    interaction__events__actor__username=username
                )
                assert not own.exists(), username
                continue
            handed.append((username, task_id))
            task = ReviewTask.objects.get(pk=task_id)
            blind.answer_blind_task(
                task=task,
                user=reviewers[int(username[3:])],
                label_class="Synergistic",
            )
    counts = Counter(task_id for _, task_id in handed)
    assert max(counts.values()) == 1, "a blind review was handed to two reviewers"
    for username, task_id in handed:
        first = LabelEvent.objects.get(interaction__review_tasks__id=task_id).actor.username
        assert first != username, "handed back to its own first reviewer"
    assert len(handed) >= 15
    assert ReviewTask.objects.filter(answered_at__isnull=False).count() == len(handed)
    print(f"\n{len(handed)} blind reviews handed to 10 reviewers asking at once, all unique")
    assert Label.objects.filter(source="review").count() == 20
