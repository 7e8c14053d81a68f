# syntax=docker/dockerfile:1.7
# eventlake services image: the Schema Registry, the producer, the live dashboard and the `eventlake`
# CLI (topics, schemas, dq, alerts). No Java: the Spark jobs have their own image (spark.Dockerfile).
#
#   docker build -f deploy/docker/eventlake.Dockerfile -t eventlake:dev .      (from the repo root)
#
# Base images are pinned to exact tags; CI resolves them to digests in the build log
# (docker/build-push-action provenance). Python 3.11: pyproject.toml requires >=3.11,<3.12.

# --- the dashboard's front-end dependency (uPlot) from npm, as `make web` does ---------------------
FROM node:22.12.0-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# --- build: a virtualenv with eventlake and its pinned dependencies ---------------------------------
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --upgrade pip==25.3
WORKDIR /src
# Dependencies first (a layer that only changes with pyproject.toml/constraints.txt), then the package.
COPY pyproject.toml constraints.txt README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/venv/bin/pip install -c constraints.txt -r /tmp/requirements.txt
COPY src ./src
COPY --from=web /web/node_modules/uplot/dist/uPlot.iife.min.js /web/node_modules/uplot/dist/uPlot.min.css ./src/eventlake/observability/static/vendor/
RUN /opt/venv/bin/pip install --no-deps -c constraints.txt . \
 && /opt/venv/bin/eventlake --help > /dev/null

# --- runtime ----------------------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="eventlake" \
      org.opencontainers.image.description="eventlake services: Schema Registry, producer, dashboard, CLI" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EVENTLAKE_HOME=/var/lib/eventlake \
    EVENTLAKE_CONFIG=/opt/eventlake/config/eventlake.yaml \
    EVENTLAKE_SCHEMAS_DIR=/opt/eventlake/data/schemas \
    EVENTLAKE_QUALITY_RULES_FILE=/opt/eventlake/config/quality.yaml \
    HEALTHCHECK_URL=http://127.0.0.1:8081/health/live
RUN groupadd --system --gid 10001 eventlake \
 && useradd --system --uid 10001 --gid eventlake --home-dir /var/lib/eventlake --create-home --shell /usr/sbin/nologin eventlake
COPY --from=build /opt/venv /opt/venv
WORKDIR /opt/eventlake
COPY config ./config
COPY data/schemas ./data/schemas
COPY deploy/docker/healthcheck.py ./healthcheck.py
# The working directory is the writable home (Spark writes scratch files relative to it); config
# files are found by the absolute EVENTLAKE_* paths above.
WORKDIR /var/lib/eventlake
USER 10001:10001
# 8081 registry, 8050 dashboard, 9109 producer /metrics (the ports config/prometheus/prometheus.yml scrapes)
EXPOSE 8081 8050 9109
HEALTHCHECK --interval=15s --timeout=6s --start-period=30s --retries=3 CMD ["python", "/opt/eventlake/healthcheck.py"]
CMD ["eventlake", "--help"]
