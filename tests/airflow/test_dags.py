"""The Airflow DAGs (airflow/dags) for real: Airflow 3 from its own virtualenv, its metadata in a
database of the test PostgreSQL, ``dag.test()`` running each DAG's tasks, which run the eventlake
CLI on the shared small lake (tests/lakes.py). What the runs produced is asserted in PostgreSQL and
the lake; a second run of the same logical date changes nothing (shown for daily_rollups; every
job's own idempotence is tested in tests/batch, where a run costs seconds, not a minute)."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from deltalake import DeltaTable

from eventlake.services.airflow import airflow_env, metadata_url, migrate
from eventlake.streaming.paths import table
from eventlake.streaming.specs import ROLLUP_SPECS, SPECS_BY_SOURCE
from tests.lakes import JAN1, JAN2, SOURCES, Lake, assert_rows_close, exact_rows, pg_rows
from tests.streaming import recompute
from tests.streaming.test_pipeline import delta_rows

pytestmark = pytest.mark.e2e
DAGRUN = Path(__file__).with_name("dagrun.py")


@pytest.fixture(scope="module")
def env(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Airflow's environment: a metadata database of its own, this lake's settings, no retries."""
    tmp = tmp_path_factory.mktemp("airflow")
    pg = lake.live.postgres_url
    settings = lake.settings.model_copy(
        update={"airflow": lake.settings.airflow.model_copy(update={"database": f"airflow_{uuid.uuid4().hex[:8]}"})}
    )
    migrate(settings, pg)
    return airflow_env(settings, pg) | {
        "AIRFLOW_HOME": str(tmp),
        "EVENTLAKE_CONFIG": str(lake.config_file(tmp / "eventlake.yaml")),
        "EVENTLAKE_AIRFLOW_TASK_RETRIES": "0",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url(pg, settings.airflow.database),
        "EVENTLAKE_AIRFLOW_VENV": str(settings.airflow.venv),
    }


def airflow(env: dict[str, str], *args: str, timeout: float = 600) -> dict[str, Any]:
    python = Path(env["EVENTLAKE_AIRFLOW_VENV"]) / "bin" / "python"
    done = subprocess.run(
        [str(python), str(DAGRUN), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("DAGRUN ")), None)
    assert done.returncode == 0 and line is not None, (done.stdout[-3000:], done.stderr[-3000:])
    return dict(json.loads(line.removeprefix("DAGRUN "))) | {"log": (done.stdout + done.stderr)[-6000:]}


def run_dag(
    env: dict[str, str], dag_id: str, logical: dt.date, conf: dict[str, str] | None = None, **tasks: str
) -> None:
    """``dag.test()`` one run; every task must end in the state given (all others: success)."""
    run = airflow(env, "test", dag_id, f"{logical.isoformat()}T03:00:00+00:00", json.dumps(conf or {}))
    want = {t: tasks.get(t, "success") for t in run["tasks"]}
    state = "failed" if any(v != "success" for v in want.values()) else "success"
    assert (run["state"], run["tasks"]) == (state, want), run["log"]


def test_dagbag_has_the_four_dags_with_their_tasks_schedules_and_callbacks(env: dict[str, str]) -> None:
    bag = airflow(env, "bag")
    assert bag["import_errors"] == {}
    dags = bag["dags"]
    assert {d: v["schedule"] for d, v in dags.items()} == {
        "daily_rollups": "30 0 * * *",
        "dq_daily_report": "0 1 * * *",
        "delta_maintenance": "0 2 * * *",
        "backfill_gold": None,
    }
    assert {d: {t: v["downstream"] for t, v in dag["tasks"].items()} for d, dag in dags.items()} == {
        "daily_rollups": {"rollups": []},
        "dq_daily_report": {"dq_report": []},
        "delta_maintenance": {"optimize_vacuum": ["prune_bookkeeping"], "prune_bookkeeping": []},
        "backfill_gold": {"backfill": ["rollups"], "rollups": []},
    }
    assert dags["backfill_gold"]["params"] == ["from", "to"]
    for dag in dags.values():
        assert dag["catchup"] is False and dag["max_active_runs"] == 1
        for task in dag["tasks"].values():
            assert task["on_failure"] == ["alert_on_failure"] and task["timeout_s"] == 7200
            assert task["retries"] == 0  # airflow.task_retries = 0 here; 2 by default


def test_daily_rollups_dag_writes_the_day_before(env: dict[str, str], lake: Lake) -> None:
    # That a rerun changes nothing is the job's property, tested in tests/batch (each Airflow run of
    # this DAG costs ~80 s here: three tasks, each its own Spark JVM).
    url = lake.live.postgres_url
    run_dag(env, "daily_rollups", JAN2)  # logical date Jan 2: the day that ended, Jan 1
    day = "window_start >= '2026-01-01' AND window_start < '2026-01-02'"
    for source in SOURCES:
        records = [r for r in lake.records(source) if r["event_time"].date() == JAN1]
        for grain, bucket in (("1h", recompute.hour), ("1d", recompute.day)):
            spec = next(s for s in ROLLUP_SPECS if s.table == f"gold_{source}_{grain}")
            want = recompute.gold(source, records, bucket)
            got = {r[: len(spec.key_columns)]: r[len(spec.key_columns) :] for r in _values(url, spec.table, spec, day)}
            assert set(got) == set(want), spec.table
            for key, values in want.items():
                assert all(math.isclose(g, w, rel_tol=1e-9) for g, w in zip(got[key], values, strict=True)), key


def _values(url: str, name: str, spec: Any, where: str) -> list[tuple[Any, ...]]:
    cols = ", ".join([*spec.key_columns, *(a for a, _, _ in spec.aggs)])
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(f"SELECT {cols} FROM {name} WHERE {where}")]


def _exists(conn: psycopg.Connection[Any], name: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone() == (True,)


def test_dq_daily_report_dag_stores_and_sends_once(env: dict[str, str], lake: Lake) -> None:
    today = dt.datetime.now(dt.UTC).date()
    with psycopg.connect(lake.live.postgres_url) as conn:  # tests/batch may have sent today's report
        if _exists(conn, "dq_reports"):
            conn.execute("DELETE FROM dq_reports WHERE day = %s", (today,))
    sent_before = len(lake.webhook.bodies)
    run_dag(env, "dq_daily_report", today + dt.timedelta(days=1))
    with psycopg.connect(lake.live.postgres_url) as conn:
        row = conn.execute("SELECT summary, sent_at FROM dq_reports WHERE day = %s", (today,)).fetchone()
    assert row is not None and row[1] is not None and row[0]["day"] == today.isoformat()
    reports = [b for b in lake.webhook.bodies[sent_before:] if f"dq_report:{today}" in json.dumps(b)]
    assert len(reports) == 1  # a rerun sends nothing: tests/batch (each Airflow run costs a minute here)


@pytest.mark.long
def test_delta_maintenance_dag_compacts_and_keeps_every_row(env: dict[str, str], lake: Lake) -> None:
    settings = lake.settings
    names = [("bronze", s) for s in SOURCES] + [("silver", s) for s in SOURCES]
    files = {n: len(DeltaTable(table(settings, *n).removeprefix("file://")).file_uris()) for n in names}
    rows = {n: exact_rows(settings, *n) for n in names}
    run_dag(env, "delta_maintenance", JAN2)
    for n in names:
        after = len(DeltaTable(table(settings, *n).removeprefix("file://")).file_uris())
        assert after <= files[n] and (after < files[n] or files[n] == 1), (n, files[n], after)
        assert exact_rows(settings, *n) == rows[n], n


@pytest.mark.long
def test_backfill_gold_dag_rebuilds_lost_gold_rows(env: dict[str, str], lake: Lake) -> None:
    url = lake.live.postgres_url
    tables = [s.table for src in SOURCES for s in SPECS_BY_SOURCE[src]]
    before = {t: pg_rows(url, t) for t in tables}
    with psycopg.connect(url) as conn:
        for t in tables:
            conn.execute(f"DELETE FROM {t}")
    run_dag(env, "backfill_gold", JAN2, {"from": JAN1.isoformat(), "to": JAN2.isoformat()})
    for t in tables:
        assert_rows_close(pg_rows(url, t), before[t], t)


def test_a_failing_task_sends_one_alert_and_leaves_the_tables(env: dict[str, str], lake: Lake) -> None:
    url = lake.live.postgres_url
    today = dt.datetime.now(dt.UTC).date().isoformat()  # not final: the backfill refuses it
    silver = {s: len(delta_rows(lake.settings, "silver", s)) for s in SOURCES}
    gold = {t: pg_rows(url, t) for src in SOURCES for t in (s.table for s in SPECS_BY_SOURCE[src])}
    seen = len(lake.webhook.bodies)
    run_dag(env, "backfill_gold", JAN2, {"from": today, "to": today}, backfill="failed", rollups="upstream_failed")
    alerts = [b for b in lake.webhook.bodies[seen:] if "airflow:backfill_gold.backfill" in json.dumps(b)]
    assert len(alerts) == 1, lake.webhook.bodies[seen:]
    with psycopg.connect(url) as conn:
        firing = conn.execute(
            "SELECT count(*) FROM dq_alerts WHERE key = 'airflow:backfill_gold.backfill' AND status = 'firing'"
        ).fetchone()
    assert firing == (1,)
    assert {s: len(delta_rows(lake.settings, "silver", s)) for s in SOURCES} == silver
    for t, rows in gold.items():
        assert_rows_close(pg_rows(url, t), rows, t)
