"""The serving path on a real broker, registry and PostgreSQL (no Spark): its PostgreSQL gold equals
an independent recompute from the raw topics, also after kill -9 mid-stream, and never goes back."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from typing import Any

import psycopg
import pytest

from eventlake.services import Stack, endpoints
from eventlake.serving.offsets import ensure_offsets_table
from eventlake.serving.runner import ServingProcess, run_until_idle
from eventlake.streaming.specs import GOLD_SPECS, ensure_gold_table
from tests.conftest import MakeSettings
from tests.streaming import recompute
from tests.streaming.test_pipeline import START, assert_gold_matches, pipeline_settings
from tests.streams import send

pytestmark = pytest.mark.e2e
SOURCES = ("user_activity", "iot_sensors", "transactions")


def _prepare(stack: Stack, make_settings: MakeSettings, tmp_path: Any, sources: tuple[str, ...]) -> Any:
    settings = pipeline_settings(stack, make_settings, tmp_path)
    settings.topics.sources = sources
    live = endpoints(settings)
    ensure_offsets_table(live.postgres_url)
    for spec in GOLD_SPECS:
        ensure_gold_table(live.postgres_url, spec)
    return settings, live


def _table(url: str, name: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return sorted(conn.execute(f"SELECT * FROM {name}").fetchall(), key=str)


def test_serving_gold_equals_recompute_and_a_rerun_changes_nothing(
    stack: Stack, make_settings: MakeSettings, tmp_path: Any
) -> None:
    settings, live = _prepare(stack, make_settings, tmp_path, SOURCES)
    n = 3000
    send(settings, live, SOURCES, n, seed=9, start_ms=START, faults=0.05)
    run_until_idle(settings, live)
    for source in SOURCES:
        raw = recompute.read_topic(live.kafka_bootstrap, live.registry_url, settings.topics.raw(source), n)
        assert raw.labels["duplicate"] > 0 and raw.labels["late"] > 0
        assert_gold_matches(settings, source, recompute.gold(source, raw.records), delta=False)
        if source == "transactions":
            sliding = recompute.sliding_transactions(raw.records)
            assert_gold_matches(settings, source, sliding, table="gold_transactions_5m_sliding", delta=False)

    before = {s.table: _table(live.postgres_url, s.table) for s in GOLD_SPECS}
    offsets = _table(live.postgres_url, "eventlake_serving_offsets")
    run_until_idle(settings, live)
    assert {s.table: _table(live.postgres_url, s.table) for s in GOLD_SPECS} == before
    assert _table(live.postgres_url, "eventlake_serving_offsets") == offsets


def test_kill_9_mid_stream_loses_duplicates_and_regresses_nothing(
    stack: Stack, make_settings: MakeSettings, tmp_path: Any
) -> None:
    source = "transactions"
    settings, live = _prepare(stack, make_settings, tmp_path, (source,))
    n = 12_000
    producer = threading.Thread(
        target=send,
        args=(settings, live, [source], n),
        kwargs={"rate": 400, "seed": 23, "start_ms": START, "faults": 0.04},
    )
    # Every row the path writes only ever grows: a replay after a crash must not write partial windows.
    seen: dict[tuple[Any, ...], int] = {}
    regressions: list[str] = []
    watching = threading.Event()

    def watch() -> None:
        with psycopg.connect(live.postgres_url, autocommit=True) as conn:
            while not watching.is_set():
                for ws, cat, count in conn.execute(
                    "SELECT window_start, merchant_category, txn_count FROM gold_transactions_5m_sliding"
                ):
                    if count < seen.get((ws, cat), 0):
                        regressions.append(f"{ws} {cat}: {seen[(ws, cat)]} -> {count}")
                    seen[(ws, cat)] = max(count, seen.get((ws, cat), 0))
                time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    producer.start()
    try:
        for pause in (4.0, 6.0, 5.0):
            proc = ServingProcess(settings, live).start()
            time.sleep(pause)
            assert proc.process.is_alive(), "the serving path died on its own"
            os.kill(proc.process.pid, signal.SIGKILL)
            proc.process.join(10)
        producer.join(timeout=120)
        assert not producer.is_alive()
        run_until_idle(settings, live)
    finally:
        watching.set()
        watcher.join()
    assert not regressions, regressions[:5]
    raw = recompute.read_topic(live.kafka_bootstrap, live.registry_url, settings.topics.raw(source), n)
    assert raw.total == n
    assert_gold_matches(settings, source, recompute.gold(source, raw.records), delta=False)
    sliding = recompute.sliding_transactions(raw.records)
    assert_gold_matches(settings, source, sliding, table="gold_transactions_5m_sliding", delta=False)


def test_a_failed_serving_process_says_why_and_a_stopped_one_exits_cleanly(
    stack: Stack, make_settings: MakeSettings, tmp_path: Any
) -> None:
    settings, live = _prepare(stack, make_settings, tmp_path, ("transactions",))
    proc = ServingProcess(settings, live).start()
    time.sleep(3)
    assert proc.failure() is None
    proc.stop()
    assert proc.process.exitcode == 0 and proc.failure() is None

    dead = dataclasses.replace(live, registry_url="http://127.0.0.1:9")  # nothing listens there
    broken = ServingProcess(settings, dead).start()
    broken.process.join(60)
    assert broken.process.exitcode == 1
    failure = broken.failure()
    assert failure is not None and "ConnectError" in failure, failure
