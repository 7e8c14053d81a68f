"""The local stack: start, check and stop every component in dependency order."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from eventlake.config import Settings
from eventlake.errors import EventlakeError, UnreachableError
from eventlake.filelock import exclusive
from eventlake.services.airflow import AirflowService
from eventlake.services.base import Service
from eventlake.services.connect import ConnectService
from eventlake.services.dashboard import DashboardService
from eventlake.services.kafka import KafkaService
from eventlake.services.lake import ensure_lake, lake_status
from eventlake.services.minio import MinioService
from eventlake.services.ops import AlertmanagerService, PrometheusService
from eventlake.services.postgres import PostgresService
from eventlake.services.process import ProcessRef
from eventlake.services.registry import RegistryService
from eventlake.services.s3 import S3Service

log = logging.getLogger(__name__)

#: Start order; `down` stops in reverse. Later components may depend on earlier ones.
SERVICE_TYPES: tuple[type[Service], ...] = (
    KafkaService,
    PostgresService,
    S3Service,  # external S3, or the local moto server
    MinioService,  # the local MinIO server (s3.server)
    RegistryService,
    ConnectService,
    DashboardService,
    AirflowService,
    # the operations stack (`up --ops`) last: Prometheus scrapes what is up by then, and alerts via Alertmanager
    AlertmanagerService,
    PrometheusService,
)

#: env var that points eventlake at an existing instance, per component (for hints)
EXTERNAL_ENV = {
    "kafka": "EVENTLAKE_KAFKA_BOOTSTRAP",
    "postgres": "EVENTLAKE_POSTGRES_URL",
    "s3": "EVENTLAKE_S3_ENDPOINT",
    "schema_registry": "EVENTLAKE_REGISTRY_URL",
    "connect": "EVENTLAKE_CONNECT_URL",
}

Progress = Callable[[str, str], None]


def streaming_status(settings: Settings) -> dict[str, Any] | None:
    """The running streaming process (``eventlake stream``/``run``), from its record; None if none runs."""
    record = settings.home / "run" / "streaming.json"
    try:
        info = json.loads(record.read_text())
        ref = ProcessRef(int(info["pid"]), float(info["create_time"]))
    except (OSError, ValueError, KeyError):
        return None
    if not ref.alive():
        return None
    try:
        resp = httpx.get(f"{info['url']}/health/ready", timeout=5)
        body = resp.json()
    except (httpx.HTTPError, ValueError) as err:
        return {"url": info["url"], "ok": False, "detail": f"no answer: {err}", "pid": ref.pid}
    checks = body.get("checks", {})
    failing = "; ".join(f"{n}: {c['detail']}" for n, c in checks.items() if not c["ok"])
    restarts = checks.get("restarts", {}).get("detail", "no restarts")
    detail = failing or "ready"
    if restarts != "no restarts":  # the supervisor restarted something: say what, even when all is well now
        detail += f"; {restarts}"
    return {"url": info["url"], "ok": resp.status_code == 200, "detail": detail, "pid": ref.pid}


class Stack:
    """All components of one EVENTLAKE_HOME."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services: list[Service] = [cls(settings) for cls in SERVICE_TYPES]

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def active(self) -> list[Service]:
        return [s for s in self.services if s.enabled()]

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One `up`/`down` at a time per home (a second waits for the first)."""
        run = self.settings.home / "run"
        run.mkdir(parents=True, exist_ok=True)
        with exclusive(run / ".lock"):
            yield

    def up(self, progress: Progress | None = None) -> None:
        """Start what is not running (idempotent). On failure, stop what this call started."""
        report = progress or (lambda _name, _msg: None)
        with self._lock():
            started: list[Service] = []
            try:
                for svc in self.active():
                    if not svc.managed:
                        self._require_reachable(svc)
                        report(svc.name, "external, reachable")
                        continue
                    if svc.running_process() is not None:
                        report(svc.name, "already running")
                        continue
                    report(svc.name, "starting")
                    svc.start()
                    started.append(svc)
                    report(svc.name, f"started at {svc.display_endpoint()}")
                ensure_lake(self.settings)
            except (EventlakeError, OSError) as err:
                log.error("up failed; stopping what this call started", extra={"err": str(err)})
                for svc in reversed(started):
                    svc.stop()
                raise

    @staticmethod
    def _require_reachable(svc: Service) -> None:
        health = svc.check()
        if not health.ok:
            env = EXTERNAL_ENV.get(svc.name, "its endpoint setting")
            raise UnreachableError(
                f"{svc.name} at {svc.display_endpoint()} is unreachable: {health.detail}",
                f"start it, or unset {env} to let eventlake run one",
            )

    def down(self, progress: Progress | None = None) -> list[str]:
        """Stop every managed component that is running (safe to run twice). Returns their names."""
        report = progress or (lambda _name, _msg: None)
        stopped = []
        with self._lock():
            for svc in reversed(self.services):
                if svc.managed and svc.stop():
                    stopped.append(svc.name)
                    report(svc.name, "stopped")
        return stopped

    def status(self) -> dict[str, Any]:
        """``eventlake status --json``: endpoint and health of each component."""
        out: dict[str, Any] = {svc.status_key: svc.status() for svc in self.active()}
        out.setdefault(
            "schema_registry",
            {
                "url": self.settings.registry.url,
                "ok": False,
                "detail": "no registry in this build",
                "managed": False,
            },
        )
        out["lake"] = lake_status(self.settings)
        streaming = streaming_status(self.settings)
        if streaming is not None:
            out["streaming"] = streaming
        return out

    def healthy(self) -> bool:
        return all(entry.get("ok") for entry in self.status().values())
