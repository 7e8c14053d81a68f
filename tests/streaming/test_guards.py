"""What must never reach the lake: records of aborted Kafka transactions, and event times from the future.

Records are sent with Kafka timestamps equal to their (simulated) event time, as a device stream would
be, so "ahead of the Kafka timestamp" means what it means in production: a clock running fast.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from deltalake import DeltaTable

from eventlake.kafka.serde import registered_serializer
from eventlake.services import Stack, endpoints
from eventlake.sources import make_generator
from eventlake.sources.produce import registry_client
from eventlake.streaming.jobs import start_jobs
from tests.conftest import MakeSettings
from tests.streaming import recompute
from tests.streaming.test_pipeline import assert_gold_matches, pipeline_settings

pytestmark = pytest.mark.e2e
SOURCE = "iot_sensors"
YEAR_MS = 365 * 86_400_000
FAST_MS = 5 * 60_000


def test_aborted_transactions_and_future_event_times_never_reach_silver_or_gold(
    stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Any
) -> None:
    settings = pipeline_settings(stack, make_settings, tmp_path)
    settings.topics.sources = (SOURCE,)
    live = endpoints(settings)
    topic = settings.topics.raw(SOURCE)
    schema = (settings.schemas_dir / f"{SOURCE}.avsc").read_text()
    serialize = registered_serializer(registry_client(live.registry_url), f"{topic}-value", schema)
    # A recent simulated clock: Kafka timestamps weeks old would fall to the topic's retention.
    start = int(time.time() * 1000) - 15 * 60_000
    gen = make_generator(settings, SOURCE, seed=11, start_ms=start, rate=50)
    events = [gen.next_event() for _ in range(3000)]
    fast_device = str(events[0].value["device_id"])  # type: ignore[index]

    producer = Producer({"bootstrap.servers": live.kafka_bootstrap, "enable.idempotence": True})
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    expected: list[dict[str, Any]] = []
    future_ids: set[str] = set()
    for i, event in enumerate(events):
        record = dict(event.value or {})
        sent_at = int(record["event_time"])  # the Kafka timestamp: when the device sent it
        if record["device_id"] == fast_device:
            record["event_time"] = sent_at + FAST_MS  # this device's clock runs 5 minutes fast
            future_ids.add(record["event_id"])
        elif i == 100:
            record["event_time"] = sent_at + YEAR_MS  # one reading dated a year ahead
            future_ids.add(record["event_id"])
        else:
            expected.append({**record, "event_time": dt.datetime.fromtimestamp(sent_at / 1000, dt.UTC)})
        producer.produce(topic, key=event.key, value=serialize(record), timestamp=sent_at, on_delivery=delivered)
    assert producer.flush(30) == 0 and not errors, errors[:3]
    assert 5 < len(future_ids) < 100

    # A transaction that is aborted: its records are in the log, but never committed.
    txn = Producer({"bootstrap.servers": live.kafka_bootstrap, "transactional.id": f"t-{uuid.uuid4().hex}"})
    txn.init_transactions(30)
    txn.begin_transaction()
    aborted_ids = set()
    for event in [gen.next_event() for _ in range(40)]:
        record = dict(event.value or {})
        aborted_ids.add(record["event_id"])
        txn.produce(topic, key=event.key, value=serialize(record), timestamp=int(record["event_time"]))
    txn.flush(30)
    txn.abort_transaction(30)

    start_jobs(spark, settings, live, ["bronze", "silver", "gold"], until_idle=True)

    lake = settings.lake_uri.removeprefix("file://")
    bronze = DeltaTable(f"{lake}/bronze/{SOURCE}").to_pyarrow_table()
    assert bronze.num_rows == len(events), "bronze holds every committed record, none of the aborted ones"
    silver_ids = set(DeltaTable(f"{lake}/silver/{SOURCE}").to_pyarrow_table().column("event_id").to_pylist())
    assert not silver_ids & aborted_ids
    assert not silver_ids & future_ids
    assert silver_ids == {r["event_id"] for r in expected}, "every other device's readings reach silver"
    reasons = Counter(DeltaTable(f"{lake}/quarantine/{SOURCE}").to_pyarrow_table().column("reason").to_pylist())
    assert reasons == {"future": len(future_ids)}
    assert_gold_matches(settings, SOURCE, recompute.gold(SOURCE, expected))
    with psycopg.connect(live.postgres_url) as conn:
        failed = conn.execute("SELECT sum(failed) FROM dq_metrics WHERE rule = 'future'").fetchone()
    assert failed == (len(future_ids),)
