# syntax=docker/dockerfile:1.7
# eventlake Airflow image: Airflow 3.3.2 in its own virtualenv (/opt/airflow-venv, pinned by
# constraints-airflow.txt, exactly as `make airflow-deps` builds .venv-airflow) and the DAGs of
# airflow/dags. The DAG tasks run `eventlake batch ...` (EVENTLAKE_CLI), which runs Spark, so this image
# also carries eventlake's virtualenv, OpenJDK 17 and the Spark jars, like spark.Dockerfile.
#
#   docker build -f deploy/docker/airflow.Dockerfile -t eventlake-airflow:dev .   (from the repo root)

# --- eventlake's virtualenv and jars (the same steps as spark.Dockerfile; BuildKit shares the cache) -
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jdk-headless maven \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --upgrade pip==25.3
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['spark']))" > /tmp/requirements.txt \
 && /opt/venv/bin/pip install -c constraints.txt -r /tmp/requirements.txt
COPY jvm ./jvm
COPY config ./config
COPY src ./src
RUN /opt/venv/bin/pip install --no-deps -c constraints.txt .
RUN --mount=type=cache,target=/root/.m2 \
    EVENTLAKE_JARS_DIR=/opt/eventlake/jars PYTHONPATH=/src/src /opt/venv/bin/eventlake setup jars \
 && rm -rf /opt/eventlake/jars/kafka

# --- Airflow's own virtualenv (its web stack cannot share eventlake's pins) -------------------------
FROM python:3.11.14-slim-bookworm AS airflow
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/airflow-venv && /opt/airflow-venv/bin/pip install --upgrade pip==25.3
COPY constraints-airflow.txt /tmp/constraints-airflow.txt
RUN /opt/airflow-venv/bin/pip install -c /tmp/constraints-airflow.txt apache-airflow==3.3.2 apache-airflow-providers-postgres==7.1.1 \
 && /opt/airflow-venv/bin/airflow version

# --- runtime ----------------------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="eventlake-airflow" \
      org.opencontainers.image.description="Airflow 3.3 with eventlake's batch DAGs and the eventlake CLI" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
 && rm -rf /var/lib/apt/lists/*
# Airflow's venv first on PATH (`airflow standalone` starts its parts as `airflow ...`); the tasks call
# eventlake's CLI by its full path.
ENV PATH=/opt/airflow-venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AIRFLOW_HOME=/var/lib/eventlake/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/eventlake/airflow/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRFLOW__CORE__EXECUTOR=LocalExecutor \
    EVENTLAKE_CLI=/opt/venv/bin/eventlake \
    EVENTLAKE_HOME=/var/lib/eventlake \
    EVENTLAKE_CONFIG=/opt/eventlake/config/eventlake.yaml \
    EVENTLAKE_SCHEMAS_DIR=/opt/eventlake/data/schemas \
    EVENTLAKE_QUALITY_RULES_FILE=/opt/eventlake/config/quality.yaml \
    EVENTLAKE_JARS_DIR=/opt/eventlake/jars \
    HEALTHCHECK_URL=http://127.0.0.1:8080/api/v2/monitor/health
RUN groupadd --system --gid 10001 eventlake \
 && useradd --system --uid 10001 --gid eventlake --home-dir /var/lib/eventlake --create-home --shell /usr/sbin/nologin eventlake
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/eventlake/jars /opt/eventlake/jars
COPY --from=airflow /opt/airflow-venv /opt/airflow-venv
WORKDIR /opt/eventlake
COPY config ./config
COPY data/schemas ./data/schemas
COPY airflow/dags ./airflow/dags
COPY deploy/docker/healthcheck.py ./healthcheck.py
# The working directory is the writable home (Spark writes scratch files relative to it); config
# files are found by the absolute EVENTLAKE_* paths above.
WORKDIR /var/lib/eventlake
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=6s --start-period=180s --retries=5 CMD ["python", "/opt/eventlake/healthcheck.py"]
CMD ["airflow", "standalone"]
