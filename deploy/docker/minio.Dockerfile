# syntax=docker/dockerfile:1.7
# MinIO for the local Compose stack, built from the Go module proxy at the pseudo-version the project
# builds and tests locally (deploy/minio.version, the one pin; deploy/tools.sh builds the same for
# `eventlake up`), so the stack needs no prebuilt MinIO release.
#
#   docker build -f deploy/docker/minio.Dockerfile -t eventlake-minio:dev .    (from the repo root)

FROM golang:1.26.8-bookworm AS build
ENV CGO_ENABLED=0 GOFLAGS=-mod=mod GOBIN=/out
COPY deploy/minio.version /tmp/minio.version
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go install -trimpath -ldflags="-s -w" "github.com/minio/minio@$(tr -d '[:space:]' < /tmp/minio.version)"

FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="eventlake-minio" \
      org.opencontainers.image.description="MinIO (S3 API) for eventlake's local Compose stack" \
      org.opencontainers.image.licenses="AGPL-3.0-only"
RUN groupadd --system --gid 10001 minio \
 && useradd --system --uid 10001 --gid minio --home-dir /data --create-home --shell /usr/sbin/nologin minio
COPY --from=build /out/minio /usr/local/bin/minio
COPY deploy/docker/healthcheck.py /opt/eventlake/healthcheck.py
ENV HEALTHCHECK_URL=http://127.0.0.1:9000/minio/health/live
USER 10001:10001
VOLUME ["/data"]
EXPOSE 9000 9001
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=5 CMD ["python", "/opt/eventlake/healthcheck.py"]
ENTRYPOINT ["minio"]
CMD ["server", "/data", "--address", ":9000", "--console-address", ":9001"]
