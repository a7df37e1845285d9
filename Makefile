# The two commands a new user needs: `make demo` and `make test` (both set themselves up).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test demo dag lock bench clean-demo airflow airflow-stop airflow-status

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/campus-sync demo run

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
