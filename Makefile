# The two commands of the README: `make demo` and `make test`. Each installs what it needs:
# a virtual environment in .venv with meterstream and its extras, and the Kafka jars (Maven).
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
export MS_PYTHON := $(abspath $(VENV))/bin/python

.PHONY: install kafka-jars test unit lint demo bench chaos figures clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

kafka-jars:
	bash ops/kafka/kafka.sh fetch

test: install kafka-jars
	$(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# the unit tests: no broker, no engine, no network (about a minute)
unit: install
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/unit $(PYTEST_ARGS)

# ruff (lint and format) and mypy, configured in pyproject.toml
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

demo: install kafka-jars
	$(VENV)/bin/meterstream demo

# Benchmarks need LiteLLM (the comparison of P1): in a virtualenv of their own.
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_VENV)/bin/pip install -q -e '.[dev,bench]'
	rm -f $(BENCH_VENV)/.installed-* && touch $@

bench: $(BENCH_STAMP) kafka-jars
	MS_PYTHON=$(abspath $(BENCH_VENV))/bin/python $(BENCH_VENV)/bin/python ops/bench/bench_pricing.py
	MS_PYTHON=$(abspath $(BENCH_VENV))/bin/python $(BENCH_VENV)/bin/python ops/bench/bench_pipeline.py
	MS_PYTHON=$(abspath $(BENCH_VENV))/bin/python $(BENCH_VENV)/bin/python ops/bench/bench_query.py
	MS_PYTHON=$(abspath $(BENCH_VENV))/bin/python $(BENCH_VENV)/bin/python ops/bench/bench_dedup.py
	MS_PYTHON=$(abspath $(BENCH_VENV))/bin/python $(BENCH_VENV)/bin/python ops/bench/bench_ingest.py
	$(BENCH_VENV)/bin/python ops/bench/summary.py

chaos: install kafka-jars
	$(VENV)/bin/python ops/chaos/run.py $(CHAOS_ARGS)
	$(VENV)/bin/python ops/bench/summary.py

figures:
	$(PYTHON) ops/bench/summary.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) .data
