# The single entry point. `make run` and `make test` each set themselves up on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Every package pinned at the version the tests passed with; `make lock` regenerates it from pyproject.toml.
LOCK := requirements.lock
export GATEWAY_EMBEDDED_DIR ?= .gateway

.PHONY: run test lint bench faults stop setup clean lock

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r $(LOCK)
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(PY) -m gateway.devrun

test: $(STAMP)
	@tools/install-test-peers
	$(PY) -m gateway.embedded exec -- $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check gateway tests bench faults
	$(VENV)/bin/ruff format --check gateway tests bench faults
	$(VENV)/bin/mypy gateway
	$(VENV)/bin/mypy --ignore-missing-imports faults

bench: $(STAMP)
	$(PY) -m gateway.embedded exec -- $(PY) -m bench.run $(BENCH_ARGS)

# Its own PostgreSQL and Redis in a temporary directory: killing them disturbs nothing else.
faults: $(STAMP)
	$(PY) -m faults $(FAULTS_ARGS)

stop: $(STAMP)
	$(PY) -m gateway.embedded stop

# Keeps the current pins where pyproject.toml allows them; LOCK_ARGS=--upgrade (or --upgrade-package P) moves them.
lock: $(STAMP)
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --extra embedded --extra dev --strip-extras \
		--no-emit-index-url --no-emit-find-links $(LOCK_ARGS) --output-file $(LOCK) pyproject.toml

clean: stop
	rm -rf $(VENV) $(GATEWAY_EMBEDDED_DIR)
