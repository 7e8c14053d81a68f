# syntax=docker/dockerfile:1.7
# eventlake Spark image: the streaming pipeline (`eventlake stream`), the batch jobs (`eventlake batch`)
# and a Spark standalone master/worker (pyspark's own `spark-class`), with OpenJDK 17 and the project's
# jars (spark-sql-kafka, spark-avro, delta-spark, hadoop-aws, JDBC) fetched by `eventlake setup jars`
# from Maven Central (jvm/pom.xml).
#
#   docker build -f deploy/docker/spark.Dockerfile -t eventlake-spark:dev .    (from the repo root)

# --- build: the virtualenv and the Maven-fetched jars -----------------------------------------------
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 DEBIAN_FRONTEND=noninteractive
# Debian's own packages, unpinned on purpose: a pinned Debian revision disappears from the archive with
# the next security update (hadolint DL3008 is disabled for that reason in deploy/docker/hadolint.yaml).
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
# `eventlake setup jars` finds jvm/pom.xml next to its source tree, so it runs from /src/src here
# (PYTHONPATH); the installed package in /opt/venv is the same code.
RUN --mount=type=cache,target=/root/.m2 \
    EVENTLAKE_JARS_DIR=/opt/eventlake/jars PYTHONPATH=/src/src /opt/venv/bin/eventlake setup jars \
 && rm -rf /opt/eventlake/jars/kafka \
 && ls /opt/eventlake/jars/spark/*.jar > /dev/null

# --- runtime ----------------------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="eventlake-spark" \
      org.opencontainers.image.description="eventlake streaming and batch jobs on Spark 4.2 with Delta, Kafka and S3A jars" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EVENTLAKE_HOME=/var/lib/eventlake \
    EVENTLAKE_CONFIG=/opt/eventlake/config/eventlake.yaml \
    EVENTLAKE_SCHEMAS_DIR=/opt/eventlake/data/schemas \
    EVENTLAKE_QUALITY_RULES_FILE=/opt/eventlake/config/quality.yaml \
    EVENTLAKE_JARS_DIR=/opt/eventlake/jars \
    SPARK_WORKER_DIR=/var/lib/eventlake/spark-work \
    HEALTHCHECK_URL=http://127.0.0.1:9108/health/live
RUN groupadd --system --gid 10001 eventlake \
 && useradd --system --uid 10001 --gid eventlake --home-dir /var/lib/eventlake --create-home --shell /usr/sbin/nologin eventlake
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/eventlake/jars /opt/eventlake/jars
WORKDIR /opt/eventlake
COPY config ./config
COPY data/schemas ./data/schemas
COPY deploy/docker/healthcheck.py ./healthcheck.py
# The working directory is the writable home (Spark writes scratch files relative to it); config
# files are found by the absolute EVENTLAKE_* paths above.
WORKDIR /var/lib/eventlake
USER 10001:10001
# 9108 streaming /metrics + /health, 9110 serving path, 7077/8080 master, 8081 worker UI
EXPOSE 9108 9110 7077 8080 8081
HEALTHCHECK --interval=20s --timeout=6s --start-period=120s --retries=3 CMD ["python", "/opt/eventlake/healthcheck.py"]
CMD ["eventlake", "stream"]
