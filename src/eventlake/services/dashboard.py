"""The live web dashboard as a managed service: ``python -m eventlake.observability.dashboard``."""

from __future__ import annotations

import os

import httpx

from eventlake.endpoints import Health
from eventlake.errors import UnreachableError
from eventlake.net import choose_port
from eventlake.services.base import Service, ServiceState
from eventlake.services.postgres import PostgresService


def dashboard_health(url: str) -> Health:
    """Ready = the dashboard answers and its dependencies (PostgreSQL) do; else which and why."""
    try:
        resp = httpx.get(f"{url}/health/ready", timeout=5)
    except httpx.HTTPError as err:
        return Health(False, f"no answer from {url}: {err}")
    if resp.status_code != 200:
        failing = (
            resp.json().get("checks", {}) if resp.headers.get("content-type", "").startswith("application/json") else {}
        )
        why = "; ".join(f"{n}: {c['detail']}" for n, c in failing.items() if not c["ok"])
        return Health(False, f"unready: {why or resp.text[:200]}")
    return Health(True, "ok")


class DashboardService(Service):
    name = "dashboard"
    status_key = "dashboard"

    def enabled(self) -> bool:
        return self.settings.dashboard.enabled

    def external_endpoint(self) -> str | None:
        return None

    def check(self) -> Health:
        url = self.endpoint()
        return dashboard_health(url) if url else Health(False, "not started")

    def _launch(self) -> ServiceState:
        cfg = self.settings.dashboard
        pg_url = PostgresService(self.settings).endpoint()
        if pg_url is None:
            raise UnreachableError("the dashboard needs PostgreSQL, which is not running", "run `eventlake up`")
        port = choose_port("dashboard", cfg.host, cfg.port, self.previous_port("http"), "EVENTLAKE_DASHBOARD_PORT")
        env = {
            **os.environ,
            "EVENTLAKE_HOME": str(self.settings.home),
            "EVENTLAKE_POSTGRES_URL": pg_url,
            "EVENTLAKE_DASHBOARD_REFRESH_S": str(cfg.refresh_s),
            "EVENTLAKE_DASHBOARD_WINDOW_MINUTES": str(cfg.window_minutes),
            "EVENTLAKE_DASHBOARD_MAX_CLIENTS": str(cfg.max_clients),
            "EVENTLAKE_DASHBOARD_POOL_SIZE": str(cfg.pool_size),
            "EVENTLAKE_DASHBOARD_POOL_TIMEOUT_S": str(cfg.pool_timeout_s),
        }
        if cfg.token is not None:
            env["EVENTLAKE_DASHBOARD_TOKEN"] = cfg.token.get_secret_value()
        return self.spawn_http(
            "eventlake.observability.dashboard",
            host=cfg.host,
            port=port,
            env=env,
            log_name="dashboard.log",
            ready=dashboard_health,
        )
