# leadloop — `make help` lists the targets. `make train` and `make test` set everything up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

$(INSTALLED): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

.PHONY: help install train test serve report mlflow bench-quality bench-reports lint format lock clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

install: $(INSTALLED) ## Create .venv and install leadloop with pinned dependencies

train: $(INSTALLED) ## Seed the default store with the demo funnel if empty, train, register in MLflow
ifeq ($(LEADLOOP_DATABASE_URL),)
	$(BIN)/leadloop demo-data --if-empty
endif
	$(BIN)/leadloop train

test: $(INSTALLED) ## Run the test suite (SQLite and PostgreSQL; CI=true makes PostgreSQL mandatory)
	$(BIN)/pytest

serve: $(INSTALLED) ## Serve the champion over HTTP on 127.0.0.1:8000 (change with HOST=, PORT=)
	$(BIN)/leadloop serve --host $(HOST) --port $(PORT)

report: $(INSTALLED) ## Write the marketer reports, alerts and dashboard to reports/out/
	$(BIN)/leadloop report

mlflow: $(INSTALLED) ## Browse runs and registered models in the MLflow UI on port 5000
	$(BIN)/mlflow ui --backend-store-uri $${LEADLOOP_MLFLOW_TRACKING_URI:-sqlite:///var/mlflow.db} --port 5000

bench-quality: $(INSTALLED) ## Model vs baselines on the demo funnel, X Education, Maven CRM -> reports/bench/quality.md
	$(BIN)/python -m reports.bench_quality

bench-reports: $(INSTALLED) ## Collapse detection over 20 seeds and report timing -> reports/bench/reports.md
	$(BIN)/python -m reports.bench_reports

lint: $(INSTALLED) ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED) ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: $(INSTALLED) ## Re-pin every transitive dependency into requirements.lock
	$(BIN)/python -m pip freeze --exclude-editable --exclude leadloop > requirements.lock

clean: ## Remove generated outputs (var/) and the virtual environment
	rm -rf var $(VENV) .pytest_cache .ruff_cache
