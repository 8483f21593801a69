"""The test harness: processes.py (Celery workers and gunicorn the tests start), environment.py
(the test knobs, broker swaps), data.py (data builders and the tiny model), faults.py and
celery_app.py (fault injection, in test code only)."""
