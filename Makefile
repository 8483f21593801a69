# ddi-curate: two commands for a fresh machine with Python 3.11+ -> `make run`, `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-fast lint format chaos bench install clean-var

# Creating the venv is a file target, so a second `make run` reuses it.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: an unpinned torch pulls gigabytes of CUDA packages.
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py setup_demo
	$(PY) manage.py setup_schedules
	@echo ""
	@echo "ddi-curate is starting at http://$(HOST):$(PORT)/  (worker log: var/worker.log; Ctrl-C stops both)"
	@echo ""
	$(PY) -m celery -A ddi_site worker -B -Q default,training,inference -c 1 -l INFO \
		--logfile var/worker.log & WORKER=$$!; \
	trap 'kill $$WORKER 2>/dev/null' EXIT INT TERM; \
	$(PY) manage.py runserver $(HOST):$(PORT)

# Two plain pytest passes (TEST_WORKERS / PG_TEST_WORKERS=0: one process each):
# 1. every test not marked `postgres`, on DATABASE_URL (SQLite when it is unset), two
#    pytest-xdist processes (it is CPU-bound: a third only makes them fight for the two cores);
# 2. the `postgres` tests (real workers, concurrency, chaos), on DATABASE_URL or the local
#    PostgreSQL and Redis, three processes: these tests mostly wait on workers, brokers and
#    timeouts (about one core busy with two). Each file of Celery worker/broker chaos tests runs
#    in order in one process, files side by side (tests/conftest.py).
TEST_WORKERS ?= 2
PG_TEST_WORKERS ?= 3
PG_URL ?= postgres://postgres@127.0.0.1:5432/ddi_curate
PG_BROKER_URL ?= redis://127.0.0.1:6379/2
test: install lint
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not postgres"
	DATABASE_URL="$${DATABASE_URL:-$(PG_URL)}" CELERY_BROKER_URL="$${CELERY_BROKER_URL:-$(PG_BROKER_URL)}" \
		$(PY) -m pytest -n $(PG_TEST_WORKERS) -m postgres

# The inner loop: no real processes, browser, chaos, PostgreSQL-only or slow tests (the whole
# suite is `make test`).
test-fast: install
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not e2e and not chaos and not browser and not slow and not postgres"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Long fault-injection runs (the short variants are part of `make test`).
chaos: install
	DDI_CHAOS_LONG=1 $(PY) -m pytest -m chaos

bench: install
	$(PY) bench/train.py
	$(PY) bench/inference.py
	$(PY) bench/pseudolabel.py

clean-var:
	rm -rf var
