# Two commands do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test test-unit bench chaos stack stop migrate lock clean proto

$(VENV)/.installed: pyproject.toml constraints.txt
	@echo "[make] creating $(VENV) and installing pinned dependencies"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[test]'
	@touch $@

## Start Kafka, PostgreSQL, Redis, the stream worker and the API (Ctrl-C stops them all).
run: $(VENV)/.installed
	scripts/run.sh

## Set up everything the same way and run the whole suite against the real servers.
test: $(VENV)/.installed
	scripts/browser.sh ensure >/dev/null  # the dashboard's browser test drives Debian's chromium
	scripts/harness.sh test $(PY) -m pytest

$(VENV)/.bench-installed: $(VENV)/.installed
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[test,bench]'
	@touch $@

## The pipeline against the row-lock baseline and a raw Kafka loop (< 10 min): bench/results/.
bench: $(VENV)/.bench-installed
	scripts/harness.sh bench timeout 900 $(PY) -m bench

## 100,000 commands with workers SIGKILLed and the broker restarted (< 25 min): chaos/results/.
chaos: $(VENV)/.installed
	scripts/harness.sh chaos timeout 1800 $(PY) -m chaos

## Unit tests only (no servers).
test-unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit -q

## Regenerate the gRPC stubs (api/grpc/generated/) from schemas/inventory.proto; commit them.
proto: $(VENV)/.installed
	$(PY) -m api.grpc.generate

stack: $(VENV)/.installed
	scripts/stack.sh start

stop:
	scripts/stack.sh stop

lock: $(VENV)/.installed
	$(VENV)/bin/pip install -q -e '.[test,bench]'
	@# `pip list --format=freeze` pins name==version even for a package installed from a local wheel.
	{ echo '# Pinned versions for reproducible installs: pip install -c constraints.txt -e ".[test]".'; \
	  echo '# Regenerate after changing pyproject.toml: make lock'; \
	  $(VENV)/bin/pip list --format=freeze --exclude-editable | grep -v -e '^inventory-stream' -e '^pip==' -e '^setuptools==' ; } > constraints.txt

clean: stop
	rm -rf .local $(VENV)
