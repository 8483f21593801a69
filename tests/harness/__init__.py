"""Test harness: fault injection and the test-only Celery app the worker processes load."""
