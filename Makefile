# llmpulse — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install system-deps run test lint fmt bench reliability clean

help:
	@echo "make run    - start the collector (embedded ClickHouse) with demo traffic on 127.0.0.1:4318"
	@echo "make test   - install into .venv, lint (ruff, mypy --strict) and run the test suite"
	@echo "make bench  - measure the SDK's cost per call against a bare OpenTelemetry span"
	@echo "make lint   - ruff and mypy only"
	@echo "make reliability - crash, outage, soak and fuzz tests, with their figures as a table"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[collector,dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests run for real: promtool and a Prometheus server (Alertmanager for the
# alert rules). Installed only when missing; needs root or sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager >/dev/null; }

run: install
	$(BIN)/llmpulse serve --demo

lint: install
	$(BIN)/ruff check sdk collector tests bench examples dashboards
	$(BIN)/ruff format --check sdk collector tests bench examples dashboards
	$(BIN)/mypy

test: lint system-deps
	$(BIN)/pytest -q

bench: install
	$(BIN)/python bench/sdk_overhead.py

# The fault tests with their figures (crash rounds, outage, soak, fuzz cases) as a README table.
# SOAK_SECONDS=600 make reliability for a longer soak.
reliability: install
	rm -f .reliability.jsonl
	RELIABILITY_FIGURES=$(CURDIR)/.reliability.jsonl $(BIN)/pytest -q \
	  tests/collector/test_durability.py tests/collector/test_outage.py tests/collector/test_soak.py \
	  tests/collector/test_fuzz_api.py tests/collector/test_fuzz_ingest.py
	$(BIN)/python bench/reliability_report.py .reliability.jsonl

fmt: install
	$(BIN)/ruff format sdk collector tests bench examples dashboards
	$(BIN)/ruff check --fix sdk collector tests bench examples dashboards

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
