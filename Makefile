# Snapclass task runner. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Loopback unless HOST says otherwise: put nginx in front (deploy/nginx/)
# before exposing Gunicorn, or run with HOST=0.0.0.0 knowingly.
HOST ?= 127.0.0.1
PORT ?= 8000
export FLASK_APP := wsgi

.DEFAULT_GOAL := help
.PHONY: help venv run test test-quick test-postgres lint format clean bench stress
.PHONY: fault-run soak cluster-test image-test

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-serve.txt requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed ## Create .venv and install the pinned requirements

run: venv ## Migrate the database and serve on 127.0.0.1:8000 with Gunicorn (HOST=0.0.0.0 exposes it)
	$(BIN)/flask db upgrade
	HOST=$(HOST) PORT=$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: venv ## Run the tests (SQLite; set TEST_DATABASE_URL for PostgreSQL)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-quick: venv ## The inner loop: the tests without Gunicorn, nginx, Chromium or slow runs
	$(BIN)/python -m pytest -m "not server and not browser and not slow" $(PYTEST_ARGS)

test-postgres: ## Run the tests against the local PostgreSQL
	TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test $(MAKE) test

lint: venv ## Check style with ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv ## Format the code with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## Remove caches (keeps .venv and instance/)
	rm -rf .pytest_cache .ruff_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

bench: venv ## Benchmark precisions, batching, pipeline and served app in one run (~15 min; --layouts ~25)
	$(BIN)/python -m bench.bench $(BENCH_ARGS)

stress: venv ## Stress-test the served app, write reports/stress-<time>/ (~2 min)
	$(BIN)/python -m stress $(STRESS_ARGS)

fault-run: venv ## Kill a worker, restart PostgreSQL, fill the disk under load (~3 min, root)
	$(BIN)/python -m devtools.fault_run $(FAULT_ARGS)

soak: venv ## Soak at ~70% capacity for 10 min; failures and worker RSS growth
	$(BIN)/python -m devtools.soak $(SOAK_ARGS)

cluster-test: venv ## nginx + 3 Gunicorn instances on PostgreSQL/Redis: sessions, cache, kill (~2 min)
	$(BIN)/python -m pytest tests/test_cluster.py -v -rs -o log_cli=true --log-cli-level=INFO $(PYTEST_ARGS)

image-test: venv ## Build the image (docker or podman) and run it alone, read-only, and as compose does (~1-3 min)
	$(BIN)/python -m scripts.image_test $(IMAGE_TEST_ARGS)
