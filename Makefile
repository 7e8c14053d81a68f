# eventlake — the two commands are `make run` and `make test`; both set up what they need.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: setup system-deps jars run test lint typecheck pytest clean down

## setup: venv + pinned Python deps + JVM jars (idempotent; a second run takes seconds)
setup: system-deps $(STAMP) jars

# Java 17 and Maven come from the OS. On a fresh Debian machine as root, install them.
system-deps:
	@if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null; \
	  else echo "error: Java 17+ and Maven are required; install openjdk-17-jdk-headless and maven" >&2; exit 1; fi; \
	fi

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==25.3
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

jars: $(STAMP)
	$(BIN)/eventlake setup jars

## run: the live demo (stack up + status; later: produce, stream, dashboard)
run: setup
	$(BIN)/eventlake run

## test: lint + type check + the whole pytest suite (real Kafka, PostgreSQL, S3 server, Spark)
test: setup lint typecheck pytest

lint:
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest $(PYTEST_ARGS)

down:
	$(BIN)/eventlake down

clean: 
	-$(BIN)/eventlake down
	rm -rf $(VENV) .eventlake
