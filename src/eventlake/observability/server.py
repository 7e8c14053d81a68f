"""``/metrics``, ``/health/live`` and ``/health/ready`` for a long-running eventlake process.

Readiness is "my dependencies answer": each check returns ``(ok, detail)``; ``/health/ready``
answers 503 naming every failing dependency and why. ``serve`` runs an app under uvicorn in a
daemon thread of the calling process (the streaming job, the producer) and records its URL in
``<home>/run/<name>.json`` so that ``eventlake status`` and Prometheus (``observability.targets``) find it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import psycopg
import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from eventlake import pg
from eventlake.config import Settings
from eventlake.endpoints import Endpoints
from eventlake.kafka.admin import kafka_health
from eventlake.kafka.security import PLAINTEXT, KafkaSecurity
from eventlake.net import choose_port
from eventlake.observability.targets import refresh_targets
from eventlake.registry.client import registry_health

log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]


def postgres_check(url: str) -> Check:
    def check() -> tuple[bool, str]:
        try:
            with pg.connect(url, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as err:
            return False, f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        return True, "ok"

    return check


def kafka_check(bootstrap: str, security: KafkaSecurity = PLAINTEXT) -> Check:
    def check() -> tuple[bool, str]:
        health = kafka_health(bootstrap, timeout=3, security=security)
        return health.ok, health.detail

    return check


def registry_check(url: str) -> Check:
    def check() -> tuple[bool, str]:
        health = registry_health(url)
        return health.ok, health.detail

    return check


def s3_check(endpoint: str) -> Check:
    """Does the S3 endpoint answer HTTP at all (any status: an anonymous request may be refused)?"""

    def check() -> tuple[bool, str]:
        try:
            resp = httpx.get(endpoint, timeout=3)
        except httpx.HTTPError as err:
            return False, f"no answer from {endpoint}: {type(err).__name__}"
        return True, f"HTTP {resp.status_code}"

    return check


def dependency_checks(live: Endpoints, security: KafkaSecurity = PLAINTEXT) -> dict[str, Check]:
    """A check per server the pipeline writes to or reads from (S3 only when an endpoint is set:
    AWS itself is not probed)."""
    checks = {
        "kafka": kafka_check(live.kafka_bootstrap, security),
        "postgres": postgres_check(live.postgres_url),
        "schema_registry": registry_check(live.registry_url),
    }
    if live.s3_endpoint:
        checks["s3"] = s3_check(live.s3_endpoint)
    return checks


def run_checks(checks: dict[str, Check]) -> dict[str, tuple[bool, str]]:
    """Each check's ``(ok, detail)``; a check that raises is a failed check, reported as such."""
    results = {}
    for name, check in checks.items():
        try:
            results[name] = check()
        except Exception as err:
            results[name] = (False, f"{type(err).__name__}: {err}")
    return results


def down(checks: dict[str, Check]) -> list[str]:
    """The failing checks, each as ``name (detail)``."""
    return [f"{name} ({detail})" for name, (ok, detail) in run_checks(checks).items() if not ok]


def add_health(app: FastAPI, checks: dict[str, Check], registry: CollectorRegistry = REGISTRY) -> FastAPI:
    """Add the three endpoints to ``app``."""

    @app.get("/health/live")
    def live() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/health/ready")
    def ready() -> Response:
        results = {name: {"ok": ok, "detail": detail} for name, (ok, detail) in run_checks(checks).items()}
        failing = [n for n, r in results.items() if not r["ok"]]
        body = {"status": "ready" if not failing else "unready", "failing": failing, "checks": results}
        return JSONResponse(body, status_code=200 if not failing else 503)

    @app.get("/metrics", response_class=PlainTextResponse)  # documented as text, as it is (schemathesis)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def serve_health(settings: Settings, name: str, checks: dict[str, Check], port: int) -> Served:
    """``/metrics`` + ``/health/*`` of process ``name`` on ``metrics.host``:``port`` (0 = a free port)."""
    app = add_health(FastAPI(title=f"eventlake {name}"), checks)
    return serve(app, name=name, home=settings.home, host=settings.metrics.host, port=port)


class Served:
    """An app running in a background thread; ``stop()`` shuts it down and forgets its state file."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, url: str, state: Path) -> None:
        self.server, self.thread, self.url, self._state = server, thread, url, state

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self._state.unlink(missing_ok=True)
        refresh_targets(self._state.parent.parent)  # stopped on purpose: no longer a scrape target


def serve(app: FastAPI, *, name: str, home: Path, host: str, port: int) -> Served:
    """Run ``app`` on host:port (0 = a free port) in a daemon thread; wait until it listens."""
    state = home / "run" / f"{name}.json"
    previous = None
    if state.is_file():
        previous = json.loads(state.read_text()).get("port")
    chosen = choose_port(name, host, port, previous, f"EVENTLAKE_METRICS_{name.upper()}_PORT")
    config = uvicorn.Config(app, host=host, port=chosen, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"eventlake-{name}-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError(f"{name} metrics server did not start on {host}:{chosen}")
    url = f"http://{host}:{chosen}"
    state.parent.mkdir(parents=True, exist_ok=True)
    me = psutil.Process()
    state.write_text(
        json.dumps({"name": name, "url": url, "port": chosen, "pid": os.getpid(), "create_time": me.create_time()})
    )
    refresh_targets(home)  # the local Prometheus, if it runs, scrapes it from its next refresh
    log.info("metrics and health served", extra={"server": name, "url": url})
    return Served(server, thread, url, state)
