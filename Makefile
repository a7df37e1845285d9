# The two commands a new user needs: `make demo` and `make test` (both set themselves up).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test demo demo-stop clean-demo dag lock bench airflow airflow-stop airflow-status bench-web browser-deps \
        test-web screenshots

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

# Two workers: the live Airflow tests (mostly waiting on the scheduler) in one, the rest in the other.
TEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope

demo: setup
	$(BIN)/campus-sync demo run

# The embedded PostgreSQL keeps running after `make demo` (Airflow tasks, the CLI and psql share it).
# demo-stop stops it (refused while `make airflow` runs on it); the data stays for the next run.
demo-stop:
	@test -x $(BIN)/campus-sync || { echo "no $(VENV): nothing was started"; exit 0; }; \
	$(BIN)/campus-sync demo stop

# Stop the local Airflow and the embedded PostgreSQL, then remove the demo's data from
# $$CAMPUS_SYNC_HOME (default .campus_sync/: database, local AIRFLOW_HOME, caches, seeding markers).
clean-demo:
	@test -x $(BIN)/campus-sync || { echo "no $(VENV): nothing was started"; exit 0; }; \
	$(BIN)/campus-sync demo clean

# Run any DAG of the package once against the same databases `make demo` uses:
#   make dag DAG=campus_partial_resync CONF='{"objects": ["Enrollment"]}'
dag: setup
	@test -n "$(DAG)" || { echo "usage: make dag DAG=<dag_id> [CONF='<json>']"; exit 2; }
	$(BIN)/campus-sync dag run $(DAG) --conf '$(or $(CONF),{})'

bench: setup
	$(BIN)/campus-sync bench --rows $(or $(ROWS),1000000)

lock:
	$(BIN)/pip freeze --exclude-editable | grep -v '^campus-state-sync' > constraints.txt

# A real Airflow in the background (api-server, scheduler, dag-processor, triggerer; LocalExecutor;
# metadata on the embedded PostgreSQL). AIRFLOW_PORT (default 8080) moves the UI/API;
# AIRFLOW_EXECUTOR=CeleryExecutor adds a Celery worker and a loopback redis-server.
airflow: setup
	$(BIN)/campus-sync airflow start

airflow-stop:
	$(BIN)/campus-sync airflow stop

airflow-status:
	$(BIN)/campus-sync airflow status

# Resync State Data page: its queries at state scale (170 districts x objects x 52 weeks).
bench-web: setup
	$(BIN)/python -m campus_sync.web.bench --districts $(or $(DISTRICTS),170) --weeks $(or $(WEEKS),52)

# Debian's chromium for the page's browser tests (root only; .ci/run does the same).
browser-deps:
	command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }

# The page's tests: data layer on PostgreSQL, rights over HTTP and the browser against a real Airflow.
test-web: setup
	$(BIN)/python -m pytest tests/web tests/live/test_page_browser.py tests/live/test_page_rights.py

# Refresh the README's screenshots (docs/screenshots/) from the browser tests against a real Airflow.
screenshots: setup
	CAMPUS_SYNC_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest tests/live/test_page_browser.py
