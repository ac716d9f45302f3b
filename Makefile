# The two commands of the README: `make demo` and `make test`. Each installs what it needs:
# a virtual environment in .venv with meterstream and its extras, and the Kafka jars (Maven).
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
export MS_PYTHON := $(abspath $(VENV))/bin/python

.PHONY: install kafka-jars test demo clean

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

demo: install kafka-jars
	$(VENV)/bin/meterstream demo

clean:
	rm -rf $(VENV) .data
