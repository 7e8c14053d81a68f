"""Exactly-once proof: kill -9 the streaming job mid-stream several times while producing goes on,
restart it each time, then compare every gold row with an independent recompute."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from eventlake.services import Stack, endpoints
from eventlake.sources.produce import produce
from tests.conftest import MakeSettings
from tests.streaming import recompute
from tests.streaming.test_pipeline import START, assert_gold_matches, pipeline_settings

pytestmark = pytest.mark.e2e
EVENTLAKE = str(Path(sys.executable).parent / "eventlake")


def test_kill_9_mid_stream_loses_and_duplicates_nothing(
    stack: Stack, make_settings: MakeSettings, tmp_path: Any
) -> None:
    settings = pipeline_settings(stack, make_settings, tmp_path)
    live = endpoints(settings)
    source = "transactions"
    env = {
        **os.environ,
        "EVENTLAKE_HOME": str(settings.home),
        "EVENTLAKE_S3_LOCAL": "true",
        "EVENTLAKE_POSTGRES_URL": live.postgres_url,
        "EVENTLAKE_LAKE_URI": settings.lake_uri,
        "EVENTLAKE_STREAMING_CHECKPOINT_DIR": str(settings.streaming.checkpoint_dir),
        "EVENTLAKE_STREAMING_TRIGGER_S": "1",
        "EVENTLAKE_STREAMING_MAX_OFFSETS_PER_TRIGGER": "700",
        "EVENTLAKE_TOPICS_RAW_PREFIX": settings.topics.raw_prefix,
        "EVENTLAKE_TOPICS_DLQ_PREFIX": settings.topics.dlq_prefix,
        "EVENTLAKE_TOPICS_ALERTS": settings.topics.alerts,
        "EVENTLAKE_TOPICS_SOURCES": json.dumps([source]),
    }
    n = 9000
    producer = threading.Thread(
        target=produce,
        kwargs={
            "settings": settings,
            "bootstrap": live.kafka_bootstrap,
            "registry_url": live.registry_url,
            "sources": [source],
            "count": n,
            "rate": 90,
            "seed": 21,
            "start_ms": START,
            "faults": 0.03,
        },
    )
    producer.start()
    rng = random.Random(5)
    kills = 0
    log = open(tmp_path / "stream.log", "w")  # noqa: SIM115 - shared by the runs below
    for _ in range(3):
        job = subprocess.Popen([EVENTLAKE, "stream"], env=env, stdout=log, stderr=log, start_new_session=True)
        time.sleep(rng.uniform(30, 50))
        assert job.poll() is None, (tmp_path / "stream.log").read_text()[-3000:]
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
        kills += 1
    producer.join(timeout=300)
    final = subprocess.run(
        [EVENTLAKE, "stream", "--until-idle"], env=env, stdout=log, stderr=log, timeout=900, check=False
    )
    log.close()
    assert final.returncode == 0, (tmp_path / "stream.log").read_text()[-3000:]
    assert kills == 3

    raw = recompute.read_topic(live.kafka_bootstrap, live.registry_url, settings.topics.raw(source), n)
    assert raw.total == n
    assert_gold_matches(settings, source, recompute.gold(source, raw.records))
    from deltalake import DeltaTable  # noqa: PLC0415

    lake = settings.lake_uri.removeprefix("file://")
    assert DeltaTable(f"{lake}/bronze/{source}").to_pyarrow_table().num_rows == n, "bronze: each record once"
    silver = DeltaTable(f"{lake}/silver/{source}").to_pyarrow_table()
    assert silver.num_rows == len(raw.records), "silver: every valid event once"
    quarantine = DeltaTable(f"{lake}/quarantine/{source}").to_pyarrow_table()
    labelled = sum(raw.labels.values()) - raw.labels["duplicate"]
    assert quarantine.num_rows == labelled, "quarantine: each bad record once"

    # The DLQ is at-least-once, but its distinct records are exactly the bad ones.
    dlq = recompute.read_topic(live.kafka_bootstrap, live.registry_url, settings.topics.dlq(source), 0, decode=False)
    assert len({h["eventlake-source-offset"] for h in dlq.headers}) == labelled
    # DQ counts survive the crashes: a replayed batch is counted once, and valid rows are never
    # taken for duplicates of themselves (no spurious `unique` failures).
    with psycopg.connect(live.postgres_url) as conn:
        failed = dict(
            conn.execute(
                "SELECT rule, sum(failed)::int FROM dq_metrics WHERE source = %s GROUP BY rule", (source,)
            ).fetchall()
        )
    assert failed["decode"] == raw.labels["undecodable"]
    assert failed["null_required:merchant_category"] == raw.labels["null_required"]
    assert failed["out_of_range:amount"] == raw.labels["out_of_range"]
    assert failed["late"] == raw.labels["late"]
    assert failed["unique:event_id"] == raw.labels["duplicate"]
