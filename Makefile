# Herald — `make help` lists the targets. Everything installs itself into .tools/ and .venv/.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.9
RUN := $(UV) run --frozen --no-sync
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)

# PostgreSQL and Redis that the tests and `make stack` use (CI's machines run both locally).
TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
STACK_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/herald
STACK_REDIS_URL ?= redis://127.0.0.1:6379/1

.PHONY: help install run stack migrate tenant debian-tools test test-fast lint format typecheck clean bench

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(UV):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Herald needs Python 3.11+"'
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

.venv/.synced: $(UV) uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
	$(UV) sync --frozen --all-packages
	@touch $@

install: .venv/.synced ## Create .venv with every package and the dev tools

run: install ## Run the whole system on embedded defaults (SQLite, in-process broker, sandbox)
	$(RUN) herald-embedded

migrate: install ## Bring the database at DATABASE_URL up to date
	$(RUN) herald-admin migrate

tenant: install ## Create a tenant and print its API key (NAME=...)
	$(RUN) herald-admin create-tenant --name "$(or $(NAME),My organization)"

stack: install ## Run the multi-process layout on PostgreSQL + Redis (gunicorn, dramatiq, scheduler)
	DATABASE_URL=$${DATABASE_URL:-$(STACK_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(STACK_REDIS_URL)} \
		$(RUN) herald-stack

# Debian packages some tests drive: Chromium for the console's browser test (Playwright's own
# download cannot be fetched here), promtool (package prometheus) for the alert unit tests.
# CI's machines run as root, so `make test` installs what is missing; those tests fail, never
# skip, without them.
DEBIAN_TOOLS := chromium:/usr/bin/chromium prometheus:/usr/bin/promtool

debian-tools: ## Install the Debian packages the tests drive (Chromium, promtool; apt-get, as root; once)
	@missing=""; for tool in $(DEBIAN_TOOLS); do \
		[ -x "$${tool#*:}" ] || missing="$$missing $${tool%%:*}"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "make debian-tools: missing:$$missing (as root: apt-get install$$missing)" >&2; exit 1; \
		fi; \
		for try in 1 2 3; do \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing \
				>/dev/null && break; \
			sleep 5; \
		done; \
		for tool in $(DEBIAN_TOOLS); do \
			[ -x "$${tool#*:}" ] || { echo "make debian-tools: $${tool%%:*} could not be installed" >&2; exit 1; }; \
		done; \
	fi

test: install lint debian-tools ## Lint, then run every test (needs PostgreSQL and Redis: it fails without them)
	HERALD_TEST_POSTGRES_URL=$(TEST_POSTGRES_URL) HERALD_TEST_REDIS_URL=$(TEST_REDIS_URL) \
		$(RUN) pytest $(PYTEST_ARGS)

test-fast: install ## Unit tests only (no PostgreSQL, Redis or subprocesses)
	$(RUN) pytest -m "not postgres and not redis and not e2e" $(PYTEST_ARGS)

lint: install ## ruff: lint and check formatting
	$(RUN) ruff check .
	$(RUN) ruff format --check .

format: install ## ruff: fix what can be fixed and format
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

bench: install ## Measure throughput, lateness, tick cost and API latency (BENCH_ARGS=--quick; see BENCHMARKS.md)
	HERALD_BENCH_POSTGRES_URL=$(TEST_POSTGRES_URL) HERALD_BENCH_REDIS_URL=$(TEST_REDIS_URL) \
		$(RUN) python -m bench $(BENCH_ARGS)

clean: ## Remove the virtual environments and local data
	rm -rf $(TOOLS) .venv var .pytest_cache .ruff_cache
