# Two commands do everything: `make run` (one round, end to end) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
# `make run` and `make ui`: the port and the folder of their own Prefect server (and data).
PORT ?= 4200
WORKDIR ?= .numerai
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: FORCE help venv run test test-fast lint format typecheck check lock ui clean bench season aws-test image image-test deployer-policy postgres

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(UV): | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check uv==0.13.9

# Your models' packages (the requirements.txt in each model's folder) are locked against
# requirements.lock; the recipe always runs but rewrites the file only when an input changed.
requirements-models.lock: FORCE | $(UV)
	$(BIN)/python -m deployments.model_packages lock

# One sync of both locks: the models' packages are never removed by the project's.
# Bytecode is compiled once here: every flow run is a new Python process, and where .pyc files
# cannot be written (PYTHONDONTWRITEBYTECODE, read-only installs) each would compile again.
$(VENV)/.installed: requirements.lock requirements-models.lock pyproject.toml | $(UV)
	$(UV) pip sync --quiet --compile-bytecode --torch-backend cpu --python $(BIN)/python \
		requirements.lock requirements-models.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

venv: $(VENV)/.installed  ## Create the virtualenv from the lock

run: venv  ## Submit one round for the models in models.toml (sandbox unless Numerai keys are set)
	$(BIN)/python -m deployments.local --port $(PORT) --workdir $(WORKDIR)

test: venv  ## Run the test suite (on PostgreSQL when NUMERAI_TEST_DATABASE_URL is set)
	$(BIN)/python -m pytest

test-fast: venv  ## The fast lane: every test but the integration ones
	$(BIN)/python -m pytest -m "not integration"

# A local PostgreSQL (Debian's package) with a role the tests make throwaway databases with;
# then: export NUMERAI_TEST_DATABASE_URL=$(PG_TEST_URL)
PG_TEST_URL := postgresql+asyncpg://numerai:numerai@127.0.0.1:5432/postgres
postgres:  ## Install and start a local PostgreSQL for the tests (needs root)
	command -v pg_lsclusters >/dev/null || (apt-get update && apt-get install -y postgresql)
	pg_lsclusters --no-header | awk '{print $$1, $$2}' | while read -r v c; do pg_ctlcluster "$$v" "$$c" start 2>/dev/null || true; done
	su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='numerai'\"" | grep -q 1 \
	  || su postgres -c "psql -qc \"CREATE ROLE numerai LOGIN SUPERUSER PASSWORD 'numerai'\""

lint: venv  ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv  ## Format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: venv  ## mypy
	$(BIN)/mypy blocks flows model sandbox deployments benchmarks tests

check: lint typecheck test  ## Everything CI runs

lock: venv  ## Re-resolve requirements.lock (all), requirements-image.lock (runtime) and the models' lock
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 --no-header -o requirements.lock
	$(UV) pip compile pyproject.toml --python-version 3.11 --no-header -o requirements-image.lock
	$(BIN)/python -m deployments.model_packages lock

ui: venv  ## Start the local Prefect server (UI on http://127.0.0.1:$(PORT)) with the runs of `make run`
	PREFECT_HOME=$(WORKDIR)/prefect PREFECT_API_URL=http://127.0.0.1:$(PORT)/api $(BIN)/prefect server start --host 127.0.0.1 --port $(PORT)

clean:  ## Remove the virtualenv, downloaded data and local Prefect state
	rm -rf $(VENV) .numerai .mypy_cache .pytest_cache .ruff_cache

bench: venv  ## Benchmarks on v5.3-size sandbox data: prints a table, writes benchmarks/results.json
	$(BIN)/python -m benchmarks.bench

# Seasons per seed, e.g. make season SEEDS=1-10 WEEKS=1 (on PostgreSQL when
# NUMERAI_TEST_DATABASE_URL is set); exits 1 if a round with a working minute was missed.
SEEDS ?= 1-10
WEEKS ?= 1
season: venv  ## Simulated weeks of rounds with faults on the real deployments, one season per seed (SEEDS=1-10 WEEKS=1)
	$(BIN)/python -m benchmarks.season --seeds $(SEEDS) --weeks $(WEEKS)

aws-test: venv  ## AWS checks on moto only: Dockerfile, stack, ECS worker
	$(BIN)/python -m pytest tests/aws

CONTAINER_TOOLS := buildah podman runc debootstrap docker-registry

image: venv  ## Build the image without Docker (buildah + a debootstrap base; needs root)
	deployments/aws/build_image.sh

# Fails (never skips) when a tool is missing, naming the command that installs it.
image-test: venv  ## Deploy to a local docker pool (podman, registry), run a round in the image
	@missing=$$(for t in $(CONTAINER_TOOLS); do command -v $$t >/dev/null || echo $$t; done); \
	if [ -n "$$missing" ]; then \
		echo "missing:" $$missing "- install: apt-get install -y $(CONTAINER_TOOLS)" >&2; exit 2; fi
	NUMERAI_CONTAINER_TESTS=1 $(BIN)/python -m pytest tests/aws/test_container.py

deployer-policy: venv  ## Regenerate the deployer's IAM policy and the roles' boundary from the stack template
	$(BIN)/python -m deployments.aws.permissions > deployments/aws/deployer-policy.json
	$(BIN)/python -m deployments.aws.permissions boundary > deployments/aws/boundary-policy.json

FORCE:
