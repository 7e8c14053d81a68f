"""eventlake's batch DAGs: thin TaskFlow tasks over the ``eventlake batch <job>`` command.

Each task runs the eventlake CLI of the platform's own virtualenv (``EVENTLAKE_CLI``; Airflow lives
in a virtualenv of its own, ``.venv-airflow``, because it pins its own web stack), so a task is
exactly what an operator would type, and every job stays runnable and tested without Airflow.
The jobs read their settings (PostgreSQL, lake, registry, Kafka) from the ``EVENTLAKE_*``
environment the scheduler was started with; no secret is stored in a DAG or a connection file.

A run for logical date D processes the UTC day that ended before it, D - 1 day, so a rerun of a
run is a rerun of the same day, and every job is idempotent per day (see ``eventlake.batch``).
A task that fails for the last time raises an eventlake alert (``eventlake alert fire``), which
reaches Slack, email and the alerts topic like any data-quality alert.

=================== ============ ==========================================================
DAG                 schedule     tasks
=================== ============ ==========================================================
daily_rollups       00:30 UTC    rollups (gold_*_1h, gold_*_1d of the day)
dq_daily_report     01:00 UTC    dq_report (stored in dq_reports, sent once)
delta_maintenance   02:00 UTC    optimize_vacuum >> prune_bookkeeping
backfill_gold       manual       backfill (params from/to) >> rollups (the same days)
=================== ============ ==========================================================
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shlex
import subprocess
from typing import Any

from airflow.sdk import Param, dag, task

log = logging.getLogger(__name__)

CLI = os.environ.get("EVENTLAKE_CLI", "eventlake")
#: ``airflow.task_retries`` of eventlake's settings (the service passes it on)
RETRIES = int(os.environ.get("EVENTLAKE_AIRFLOW_TASK_RETRIES", "2"))
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def alert_on_failure(context: dict[str, Any]) -> None:
    """Raise an eventlake alert for a task that failed for the last time (retries exhausted)."""
    ti = context["task_instance"]
    key = f"airflow:{ti.dag_id}.{ti.task_id}"
    message = f"Airflow task {ti.dag_id}.{ti.task_id} failed (run {ti.run_id}, try {ti.try_number}): "
    message += str(context.get("exception") or "see the task log")[:500]
    cmd = [CLI, "alert", "fire", "--key", key, "--severity", "critical", "--message", message]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        log.error("could not raise the eventlake alert for %s: %s", key, done.stderr.strip()[-500:])


DEFAULTS: dict[str, Any] = {
    "retries": RETRIES,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "execution_timeout": dt.timedelta(hours=2),
    "on_failure_callback": alert_on_failure,
}


def day_before(context: dict[str, Any]) -> str:
    """The UTC day a run processes: the one before its logical date (or before the time it was
    triggered, for a manual run without one)."""
    when = context.get("logical_date") or context["dag_run"].run_after
    return (when.astimezone(dt.UTC) - dt.timedelta(days=1)).date().isoformat()


def command(*args: str) -> str:
    return shlex.join([CLI, "batch", *args])


@dag(
    dag_id="daily_rollups",
    schedule="30 0 * * *",
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULTS,
    tags=["eventlake"],
    doc_md="Hourly and daily rollups (gold_*_1h, gold_*_1d) of the day before, from silver.",
)
def daily_rollups() -> None:
    @task.bash
    def rollups(**context: Any) -> str:
        return command("rollups", "--date", day_before(context))

    rollups()


@dag(
    dag_id="dq_daily_report",
    schedule="0 1 * * *",
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULTS,
    tags=["eventlake"],
    doc_md="The day before's data-quality report: stored in PostgreSQL (dq_reports), sent once.",
)
def dq_daily_report() -> None:
    @task.bash
    def dq_report(**context: Any) -> str:
        return command("dq-report", "--date", day_before(context))

    dq_report()


@dag(
    dag_id="delta_maintenance",
    schedule="0 2 * * *",
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULTS,
    tags=["eventlake"],
    doc_md="OPTIMIZE + Z-order and VACUUM of every lake table, then pruning of PostgreSQL bookkeeping.",
)
def delta_maintenance() -> None:
    @task.bash
    def optimize_vacuum() -> str:
        return command("maintenance", "--no-bookkeeping")

    @task.bash
    def prune_bookkeeping() -> str:
        return command("maintenance", "--no-lake")

    optimize_vacuum() >> prune_bookkeeping()


@dag(
    dag_id="backfill_gold",
    schedule=None,
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULTS,
    tags=["eventlake"],
    params={
        "from": Param(type="string", format="date", description="first UTC day to rebuild"),
        "to": Param(type="string", format="date", description="last UTC day to rebuild (included)"),
    },
    doc_md="Rebuild silver and gold of the days from bronze, then their rollups. Manual; params from/to.",
)
def backfill_gold() -> None:
    @task.bash
    def backfill(params: dict[str, Any]) -> str:
        return command("backfill", "--from", params["from"], "--to", params["to"])

    @task.bash
    def rollups(params: dict[str, Any]) -> str:
        return command("rollups", "--from", params["from"], "--to", params["to"])

    backfill() >> rollups()


daily_rollups()
dq_daily_report()
delta_maintenance()
backfill_gold()
