"""Airflow as a managed service of the stack: `airflow standalone` from .venv-airflow on the
stack's PostgreSQL, healthy in `status`, stopped by `down`."""

from __future__ import annotations

import uuid

import httpx
import psycopg
import pytest

from eventlake.services import Stack, endpoints
from eventlake.services.airflow import AirflowService
from eventlake.services.process import wait_until

pytestmark = pytest.mark.e2e


def test_airflow_starts_on_the_stack_postgres_reports_healthy_and_stops(stack: Stack) -> None:
    settings = stack.settings.model_copy(
        update={"airflow": stack.settings.airflow.model_copy(update={"database": f"af_{uuid.uuid4().hex[:8]}"})}
    )
    svc = AirflowService(settings)
    assert not svc.enabled()  # off by default, until started
    svc.start()
    try:
        assert svc.enabled()
        entry = Stack(settings).status()["airflow"]
        assert entry["ok"] is True and entry["url"].startswith("http://127.0.0.1:"), entry
        health = httpx.get(f"{entry['url']}/api/v2/monitor/health", timeout=10).json()
        assert health["metadatabase"]["status"] == "healthy" and health["scheduler"]["status"] == "healthy"
        # The DAG processor parsed the project's DAGs into the metadata DB (the API lists them only
        # after a login, so read the table it serves them from).
        url = endpoints(settings).postgres_url.rsplit("/", 1)[0] + f"/{settings.airflow.database}"

        def parsed() -> bool:
            with psycopg.connect(url) as conn:
                ids = {r[0] for r in conn.execute("SELECT dag_id FROM dag")}
            return {"daily_rollups", "dq_daily_report", "delta_maintenance", "backfill_gold"} <= ids

        assert wait_until(parsed, timeout=120, interval=2)
    finally:
        assert svc.stop()
    assert not svc.enabled() and Stack(settings).status().get("airflow") is None
