# llmpulse — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install run test lint fmt bench clean

help:
	@echo "make run    - start the collector (embedded ClickHouse) with demo traffic on 127.0.0.1:4318"
	@echo "make test   - install into .venv, lint (ruff, mypy --strict) and run the test suite"
	@echo "make bench  - measure the SDK's cost per call against a bare OpenTelemetry span"
	@echo "make lint   - ruff and mypy only"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[collector,dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/llmpulse serve --demo

lint: install
	$(BIN)/ruff check sdk collector tests bench
	$(BIN)/ruff format --check sdk collector tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: install
	$(BIN)/python bench/sdk_overhead.py

fmt: install
	$(BIN)/ruff format sdk collector tests bench
	$(BIN)/ruff check --fix sdk collector tests bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
