"""Airflow as a managed service: ``airflow standalone`` (API server, scheduler, DAG processor,
triggerer) from its own virtualenv, LocalExecutor, metadata in a database of the platform's
PostgreSQL, DAGs from ``airflow/dags``.

The DAG tasks run the eventlake CLI of the running interpreter's virtualenv (``EVENTLAKE_CLI``) with
this stack's ``EVENTLAKE_HOME``, so the batch jobs find the stack the way ``eventlake`` does.
Secrets (the metadata database URL) go to the process environment only, never to a file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

from eventlake.config import Settings
from eventlake.endpoints import Health
from eventlake.errors import ServiceError, UnreachableError
from eventlake.net import choose_port
from eventlake.services.base import Service, ServiceState
from eventlake.services.postgres import PostgresService


def airflow_health(url: str) -> Health:
    """Ready = the API server answers and reports a healthy metadata DB and scheduler."""
    try:
        resp = httpx.get(f"{url}/api/v2/monitor/health", timeout=5)
        body = resp.json()
    except (httpx.HTTPError, ValueError) as err:
        return Health(False, f"no answer from {url}: {err}")
    bad = [k for k in ("metadatabase", "scheduler") if body.get(k, {}).get("status") != "healthy"]
    return Health(not bad, f"unhealthy: {', '.join(bad)}" if bad else "ok")


def metadata_url(postgres_url: str, database: str) -> str:
    """The SQLAlchemy URL of Airflow's metadata database (psycopg 3 driver) on the same server."""
    parts = urlsplit(postgres_url)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg", path=f"/{database}"))


def ensure_database(postgres_url: str, database: str) -> None:
    admin = urlunsplit(urlsplit(postgres_url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def airflow_env(settings: Settings, postgres_url: str, *, port: int | None = None) -> dict[str, str]:
    """The environment Airflow (and the tasks it runs) needs: its config, and this stack's home."""
    cfg = settings.airflow
    env = {
        **os.environ,
        # `airflow standalone` starts its components as `airflow ...` from PATH
        "PATH": os.pathsep.join([str(cfg.venv / "bin"), os.environ.get("PATH", "")]),
        "AIRFLOW_HOME": str(settings.home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(cfg.dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url(postgres_url, cfg.database),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(settings.home / "airflow" / "logs"),
        "EVENTLAKE_HOME": str(settings.home),
        "EVENTLAKE_CLI": str(Path(sys.executable).parent / "eventlake"),
        "EVENTLAKE_AIRFLOW_TASK_RETRIES": str(cfg.task_retries),  # read by the DAG file
    }
    if port is not None:
        env |= {"AIRFLOW__API__HOST": cfg.host, "AIRFLOW__API__PORT": str(port)}
    return env


def airflow_bin(settings: Settings) -> Path:
    exe = settings.airflow.venv / "bin" / "airflow"
    if not exe.exists():
        raise ServiceError(f"Airflow is not installed at {settings.airflow.venv}", "run `make setup`")
    return exe


def migrate(settings: Settings, postgres_url: str) -> None:
    """Create or upgrade Airflow's metadata schema (idempotent)."""
    ensure_database(postgres_url, settings.airflow.database)
    env = airflow_env(settings, postgres_url)
    done = subprocess.run(
        [str(airflow_bin(settings)), "db", "migrate"], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise ServiceError(f"airflow db migrate failed: {done.stderr.strip()[-300:]}")


class AirflowService(Service):
    name = "airflow"
    status_key = "airflow"

    def enabled(self) -> bool:
        # `eventlake airflow up` starts it without the setting; from then on status and down see it.
        return self.settings.airflow.enabled or self.running_process() is not None

    def external_endpoint(self) -> str | None:
        return None

    def check(self) -> Health:
        url = self.endpoint()
        return airflow_health(url) if url else Health(False, "not started")

    def _launch(self) -> ServiceState:
        cfg = self.settings.airflow
        pg_url = PostgresService(self.settings).endpoint()
        if pg_url is None:
            raise UnreachableError("Airflow needs PostgreSQL, which is not running", "run `eventlake up`")
        exe = airflow_bin(self.settings)
        migrate(self.settings, pg_url)
        port = choose_port("airflow", cfg.host, cfg.port, self.previous_port("http"), "EVENTLAKE_AIRFLOW_PORT")
        return self.spawn_and_wait(
            [str(exe), "standalone"],
            host=cfg.host,
            port=port,
            env=airflow_env(self.settings, pg_url, port=port),
            log_name="airflow.log",
            ready=airflow_health,
            timeout=cfg.start_timeout_s,
            interval=2,
        )
