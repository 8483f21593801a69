"""The test environment: the knobs every test process sets (and the worker and web processes
the tests start inherit), and pointing the project's Celery app at another broker for a block."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings as django_settings
from hypothesis import settings as hypothesis_settings


@contextmanager
def celery_broker(url: str, transport_options: dict | None = None) -> Iterator[None]:
    """Point the project's Celery app (used by services to publish) at another broker."""
    from ddi_site.celery import app

    # broker_write_url / broker_read_url were filled from the CELERY_BROKER_URL environment
    # variable at configuration time and win over broker_url: swap them too, or the publisher
    # keeps sending to the old broker.
    names = ("broker_url", "broker_write_url", "broker_read_url", "broker_transport_options")
    saved = {name: app.conf.get(name) for name in names}
    _drop_connections(app)
    app.conf.broker_url = app.conf.broker_write_url = app.conf.broker_read_url = url
    app.conf.broker_transport_options = transport_options or {}
    try:
        yield
    finally:
        _drop_connections(app)
        for name, value in saved.items():
            setattr(app.conf, name, value)


def _drop_connections(app) -> None:
    # Celery caches its connection pool and kombu keeps a registry of pools per connection;
    # a new broker URL needs fresh ones (as after a fork). Closing a pool without resetting the
    # registry would hand out the closed pool again ("Acquire on closed pool").
    from kombu import pools

    pools.reset()
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


def configure_test_environment() -> None:
    """Called once by tests/conftest.py, before any test."""
    # Property tests are reproducible run to run (CI must not find a new example by chance) and have
    # no per-example deadline: a loaded 2-core machine is not a bug. DDI_HYPOTHESIS_PROFILE=explore
    # turns randomness back on.
    hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
    hypothesis_settings.register_profile("explore", deadline=None)
    hypothesis_settings.load_profile(os.environ.get("DDI_HYPOTHESIS_PROFILE", "ci"))

    # The tiny random-weight BERT of the tests cannot reach the promotion floor (its out-of-fold score
    # is a coin toss), so tests run with no floor: in this process and in the worker and web processes
    # they start (they inherit the environment). The floor itself is tested with its real value
    # (tests/annotations/test_training.py sets it).
    os.environ["DDI_PROMOTION_MIN_MACRO_F1"] = "0"
    django_settings.DDI_PROMOTION_MIN_MACRO_F1 = 0.0
    # Likewise the web pages' rate limit: a test suite signs the same personas in hundreds of times a
    # minute. The limit itself is tested with a low rate (tests/reliability/test_web_throttle.py).
    os.environ["THROTTLE_WEB"] = "1000000/min"
    django_settings.DDI_WEB_THROTTLE_RATE = "1000000/min"
    # Concurrent test runs (several developers, CI) each get their own test database name.
    if os.environ.get("DDI_TEST_DB_NAME"):
        django_settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ[
            "DDI_TEST_DB_NAME"
        ]
