"""Load mix for RELIABILITY.md scenario 15: reviewers and curators on the API during a run.

Driven by tests/reliability/test_load.py (which seeds the data and starts gunicorn, a Celery
worker and a pseudo-labeling run), or by hand against any server with the same JSON plan:

    DDI_LOAD_PLAN=plan.json locust -f loadtests/locustfile.py --headless -u 20 -r 10 -t 40s \
        --host http://127.0.0.1:8000 --csv /tmp/load

The plan (JSON) names the project, one token and a disjoint set of label ids per simulated
reviewer, a curator token for exports, search terms, and a login for the burst:
    {"project_id": 1, "classes": ["A", "B"], "curator_token": "...",
     "reviewers": [{"token": "...", "labels": [3, 4]}, ...], "search_terms": ["..."],
     "login": {"username": "...", "password": "..."},
     "burst": {"per_second": 50, "seconds": 5, "start_after_s": 5}}

Mix per reviewer (task weights): 70 review (GET a label, PATCH it with If-Match), 15 queue-next,
10 list/search, 5 small export (JSONL, reviewed labels only). One extra user (fixed_count=1)
fires the login burst: `per_second` token logins a second from this one IP, which the "login"
throttle must answer with 429, never 5xx. Reviewer requests sent while the burst is in flight
are named with the suffix " (during login burst)", so the burst's stall is measured apart.

Each reviewer is the only one editing its labels, so any 409/412 is an optimistic-lock false
positive and is reported as a failure. Every response's status code per request name is written
to DDI_LOAD_STATUS (JSON) when locust stops, so the test can count 5xx exactly.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from collections import Counter, defaultdict

import gevent
from gevent.pool import Pool
from locust import HttpUser, between, constant, events, task
from requests.adapters import HTTPAdapter

PLAN_FILE = os.environ.get("DDI_LOAD_PLAN")
if not PLAN_FILE:
    raise SystemExit("Set DDI_LOAD_PLAN to the JSON plan (see loadtests/locustfile.py).")
with open(PLAN_FILE, encoding="utf-8") as _plan_file:
    PLAN = json.load(_plan_file)

# Locust runs every simulated user as a greenlet of this one process: a plain iterator hands
# each reviewer its own entry of the plan (its token and its labels).
_REVIEWERS = iter(PLAN["reviewers"])
STATUS_COUNTS: dict[str, Counter] = defaultdict(Counter)
# While the login burst is in flight, the reviewers' requests are reported under their own names
# (suffix DURING_BURST): the burst's stall is measured apart from the steady mix's p95s.
DURING_BURST = " (during login burst)"
_burst_in_flight = False

REVIEW_GET = "GET /api/labels/[id]/"
REVIEW_PATCH = "PATCH /api/labels/[id]/"
QUEUE_NEXT = "POST /api/projects/[id]/queue/next/"
SEARCH = "GET /api/interactions/?search="
EXPORT = "GET /api/projects/[id]/export/?file_format=jsonl&reviewed_only=true"
LOGIN_BURST = "POST /api/auth/token/ (burst)"


@events.request.add_listener
def _count_status(name, response=None, exception=None, **_kwargs):
    status = getattr(response, "status_code", None) or 0  # 0: no HTTP answer at all
    STATUS_COUNTS[name][str(status)] += 1


def _write_status(**_kwargs) -> None:
    path = os.environ.get("DDI_LOAD_STATUS")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump({name: dict(counts) for name, counts in STATUS_COUNTS.items()}, out)


events.test_stop.add_listener(_write_status)
events.quitting.add_listener(_write_status)


def _name(name: str) -> str:
    return name + DURING_BURST if _burst_in_flight else name


def _unexpected(response, what: str) -> None:
    response.failure(f"{what}: HTTP {response.status_code} {response.text[:200]!r}")


class Reviewer(HttpUser):
    """A reviewer working through its own labels, the queue, search and small exports."""

    wait_time = between(0.2, 1.0)

    def on_start(self) -> None:
        try:
            me = next(_REVIEWERS)
        except StopIteration:
            raise RuntimeError("more Reviewer users than plan entries") from None
        self.client.headers["Authorization"] = f"Token {me['token']}"
        self.labels = itertools.cycle(me["labels"])
        self.project = PLAN["project_id"]
        self.classes = PLAN["classes"]

    @task(70)
    def review(self) -> None:
        label_id = next(self.labels)
        url = f"/api/labels/{label_id}/"
        with self.client.get(url, name=_name(REVIEW_GET), catch_response=True) as answer:
            if answer.status_code != 200:
                return _unexpected(answer, "load label")
            loaded = answer.json()
            if answer.headers.get("ETag") != f'"{loaded["version"]}"':
                return answer.failure(f"ETag {answer.headers.get('ETag')} != {loaded['version']}")
        new_class = random.choice([c for c in self.classes if c != loaded["label_class"]])
        with self.client.patch(
            url,
            json={"label_class": new_class},
            headers={"If-Match": f'"{loaded["version"]}"'},
            name=_name(REVIEW_PATCH),
            catch_response=True,
        ) as answer:
            if answer.status_code in (409, 412):
                # Nobody else edits this label: the conflict is a false positive.
                answer.failure(f"optimistic-lock false positive: HTTP {answer.status_code}")
            elif answer.status_code != 200:
                _unexpected(answer, "save label")
            elif answer.json()["version"] != loaded["version"] + 1:
                answer.failure(f"version {answer.json()['version']} after {loaded['version']}")

    @task(15)
    def queue_next(self) -> None:
        url = f"/api/projects/{self.project}/queue/next/"
        with self.client.post(url, json={}, name=_name(QUEUE_NEXT), catch_response=True) as answer:
            if answer.status_code in (200, 204):
                answer.success()
            else:
                _unexpected(answer, "queue next")

    @task(10)
    def search(self) -> None:
        term = random.choice(PLAN["search_terms"])
        with self.client.get(
            "/api/interactions/",
            params={"project": self.project, "search": term, "page_size": 20},
            name=_name(SEARCH),
            catch_response=True,
        ) as answer:
            if answer.status_code != 200 or "results" not in answer.json():
                _unexpected(answer, "search")

    @task(5)
    def small_export(self) -> None:
        # reviewed_only keeps it small: only the labels the simulated reviewers saved.
        with self.client.get(
            f"/api/projects/{self.project}/export/",
            params={"file_format": "jsonl", "reviewed_only": "true"},
            headers={"Authorization": f"Token {PLAN['curator_token']}"},
            name=_name(EXPORT),
            catch_response=True,
        ) as answer:
            if answer.status_code != 200:
                _unexpected(answer, "export")


class LoginBurst(HttpUser):
    """One client (one IP) firing `per_second` token logins a second for `seconds` seconds."""

    fixed_count = 1
    wait_time = constant(1)

    def on_start(self) -> None:
        self.started = time.monotonic()
        self.done = False
        # Up to per_second requests are in flight at once: keep them on reusable connections.
        burst = PLAN["burst"]
        self.client.mount("http://", HTTPAdapter(pool_maxsize=2 * burst["per_second"]))

    @task
    def burst(self) -> None:
        burst = PLAN["burst"]
        if self.done or time.monotonic() - self.started < burst["start_after_s"]:
            return
        global _burst_in_flight
        self.done = True
        _burst_in_flight = True
        pool = Pool()
        for _ in range(burst["seconds"]):
            tick = time.monotonic()
            for _ in range(burst["per_second"]):
                pool.spawn(self._login)
            gevent.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        pool.join()
        _burst_in_flight = False

    def _login(self) -> None:
        with self.client.post(
            "/api/auth/token/", data=PLAN["login"], name=LOGIN_BURST, catch_response=True
        ) as answer:
            if answer.status_code in (200, 429):  # the first few pass, then the throttle
                answer.success()
            else:
                _unexpected(answer, "login burst")
