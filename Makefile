# leadloop — `make help` lists the targets. `make train` and `make test` set everything up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1

$(INSTALLED): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

.PHONY: help install browser wrk train test serve report mlflow bench bench-quality bench-reports reliability lint format lock clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

install: $(INSTALLED) ## Create .venv and install leadloop with pinned dependencies

browser: ## Install Debian's chromium for the browser tests (apt, as root), unless one is there
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian's chromium for the browser tests (once)"; \
	    apt-get install -y -qq chromium >/dev/null 2>&1 || \
	      { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; \
	  else \
	    echo "No chromium: the browser tests will be skipped (install Debian's chromium to run them)"; \
	  fi; }

wrk: ## Install Debian's wrk, the load generator of make bench (apt, as root), unless one is there
	@command -v wrk >/dev/null || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian's wrk for make bench (once)"; \
	    apt-get install -y -qq wrk >/dev/null 2>&1 || \
	      { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; \
	  else \
	    echo "make bench needs wrk: install Debian's (apt-get install wrk)"; exit 2; \
	  fi; }

train: $(INSTALLED) ## Seed the default store with the demo funnel if empty, train, register in MLflow
ifeq ($(LEADLOOP_DATABASE_URL),)
	$(BIN)/leadloop demo-data --if-empty
endif
	$(BIN)/leadloop train

test: $(INSTALLED) browser ## The layer contract, then every test (CI=true: PostgreSQL and chromium are required)
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -n auto --maxprocesses 4 --dist loadfile

serve: $(INSTALLED) ## Serve the champion over HTTP on 127.0.0.1:8000 (change with HOST=, PORT=, WORKERS=)
	$(BIN)/leadloop serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

report: $(INSTALLED) ## Write the marketer reports, alerts and dashboard to var/reports/
	$(BIN)/leadloop report

mlflow: $(INSTALLED) ## Browse runs and registered models in the MLflow UI on port 5000
	$(BIN)/mlflow ui --backend-store-uri $${LEADLOOP_MLFLOW_TRACKING_URI:-sqlite:///var/mlflow.db} \
	  --artifacts-destination var/mlartifacts --port 5000

bench: $(INSTALLED) wrk ## Scoring speed side by side with its floors and MLflow's server (after make train, about 6 min) -> reports/bench/serving.md
	$(BIN)/python -m benchmarks.bench_serving

bench-quality: $(INSTALLED) ## Model vs baselines, one holdout and a rolling origin: demo funnel, X Education, Maven CRM -> reports/bench/quality.md
	$(BIN)/python -m benchmarks.bench_quality

bench-reports: $(INSTALLED) ## Change detection against the information bound over 20 seeds, and report timing (about 10 min) -> reports/bench/reports.md
	$(BIN)/python -m benchmarks.bench_reports

reliability: $(INSTALLED) ## Probe real servers as an attacker and a careless client would (about 20 min) -> reports/bench/reliability.md
	$(BIN)/python -m benchmarks.bench_reliability

lint: $(INSTALLED) ## ruff check, ruff format --check, and the layer contract (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: $(INSTALLED) ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: $(INSTALLED) ## Re-pin every transitive dependency into requirements.lock
	$(BIN)/python -m pip freeze --exclude-editable --exclude leadloop > requirements.lock

clean: ## Remove everything generated (var/, caches, build files) and the virtual environment
	rm -rf var mlruns mlartifacts $(VENV) .pytest_cache .ruff_cache .import_linter_cache build dist
	find . -path ./.git -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 \
	  | xargs -0 rm -rf
