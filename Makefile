# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint unit integration bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Embedded broker + worker + simulator; trains the default model first if it is missing.
demo: $(STAMP)
	$(BIN)/faust -A app demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Lint, type-check, then every test: unit, and integration on the embedded tansu broker and
## on Apache Kafka (one KRaft node; its jars are fetched with mvn on first use). Two pytest
## processes: most of an integration test's time is spent waiting on a broker or a worker.
PYTEST_PARALLEL ?= -n 2 --dist worksteal
test: lint
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL)

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL) tests/integration

## Throughput and latency benchmark (prints its figures): on the embedded broker, or on a
## local Apache Kafka with `make bench BROKER=kafka`.
BROKER ?= tansu
bench: $(STAMP)
	$(BIN)/python bench/pipeline_bench.py --rounds 5 --broker $(BROKER)

clean:
	rm -rf $(VENV) .vigil-data .pytest_cache .mypy_cache .ruff_cache
