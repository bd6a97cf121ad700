# llmpulse — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install system-deps run test lint fmt bench bench-sdk bench-collector bench-queries bench-peers reliability clean

help:
	@echo "make run    - start the collector (embedded ClickHouse) with demo traffic on 127.0.0.1:4318"
	@echo "make test   - install into .venv, lint (ruff, mypy --strict) and run the test suite"
	@echo "make bench  - every issue #8 figure with its same-run baseline and ratio (BENCH_ARGS=--check to fail on a miss)"
	@echo "make bench-peers - the SDK workload through Langfuse, Traceloop, OpenLIT and ddtrace, each in its own venv"
	@echo "make lint   - ruff and mypy only"
	@echo "make reliability - crash, outage, soak and fuzz tests, with their figures as a table"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever the packaging or a C accelerator changes (pip builds them in place).
$(STAMP): pyproject.toml setup.py collector/llmpulse_collector/_otlpscan.c sdk/llmpulse/_otlpenc.c sdk/llmpulse/_speedups.c | $(BIN)/python
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

# Each script prints its table and writes rows to bench/results/; report.py merges them into
# the README's table. bench-queries loads 10M spans into .bench-data/ (~4 GB, a few minutes).
BENCH_ARGS ?=
RESULTS := bench/results
bench: bench-sdk bench-collector bench-queries
	$(BIN)/python bench/report.py $(RESULTS)/sdk_overhead.json $(RESULTS)/sdk_footprint.json \
	  $(RESULTS)/ingest_e2e.json $(RESULTS)/query_scale.json | tee $(RESULTS)/table.md

bench-sdk: install
	$(BIN)/python bench/sdk_overhead.py --json $(RESULTS)/sdk_overhead.json $(BENCH_ARGS)
	$(BIN)/python bench/sdk_footprint.py --json $(RESULTS)/sdk_footprint.json $(BENCH_ARGS)

bench-collector: install
	$(BIN)/python bench/ingest_e2e.py --json $(RESULTS)/ingest_e2e.json $(BENCH_ARGS)

bench-queries: install
	$(BIN)/python bench/query_scale.py --json $(RESULTS)/query_scale.json \
	  --ingest-baseline $(RESULTS)/ingest_e2e.json $(BENCH_ARGS)

# Peers each get a venv under .bench-venvs/ (their pins conflict); built once, reused.
bench-peers: install
	$(BIN)/python bench/peers/run.py --json $(RESULTS)/peers.json $(BENCH_ARGS)
	$(BIN)/python bench/report.py $(RESULTS)/peers.json

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
