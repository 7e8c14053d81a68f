"""What must never reach the lake: records of aborted Kafka transactions, and event times from the future.

The simulated clock ends a few seconds before the records are sent, so event times are what a live
device stream has. Raw topics take the broker's clock as the Kafka timestamp (``LogAppendTime``), so
"ahead of the Kafka timestamp" means ahead of the broker, whoever sent the record: a device whose own
clock runs fast, a reading dated a year ahead, and a producer host whose clock runs fast (it dates
its records *and* their Kafka timestamps ahead; with ``CreateTime`` they passed as valid and made
every correct record after them in their partitions ``late``).
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
    # 3000 events at 50/s span 60 s of simulated time, ending 10 s before now: none is ahead of the broker.
    start = int(time.time() * 1000) - 70_000
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
    fast_host_ids: set[str] = set()
    for i, event in enumerate(events):
        record = dict(event.value or {})
        sent_at = int(record["event_time"])  # when the device sent it
        timestamp = None  # the producer's clock: librdkafka's default
        if record["device_id"] == fast_device:
            record["event_time"] = sent_at + FAST_MS  # this device's clock runs 5 minutes fast
            future_ids.add(record["event_id"])
        elif i == 100:
            record["event_time"] = sent_at + YEAR_MS  # one reading dated a year ahead
            future_ids.add(record["event_id"])
        elif i % 50 == 7:
            # relayed by a producer host whose clock runs 5 minutes fast: the record and its timestamp
            record["event_time"] = timestamp = sent_at + FAST_MS
            fast_host_ids.add(record["event_id"])
        else:
            expected.append({**record, "event_time": dt.datetime.fromtimestamp(sent_at / 1000, dt.UTC)})
        kw = {} if timestamp is None else {"timestamp": timestamp}
        producer.produce(topic, key=event.key, value=serialize(record), on_delivery=delivered, **kw)
    assert producer.flush(30) == 0 and not errors, errors[:3]
    assert 5 < len(future_ids) < 100 and len(fast_host_ids) > 50
    future_ids |= fast_host_ids

    # A transaction that is aborted: its records are in the log, but never committed.
    txn = Producer({"bootstrap.servers": live.kafka_bootstrap, "transactional.id": f"t-{uuid.uuid4().hex}"})
    txn.init_transactions(30)
    txn.begin_transaction()
    aborted_ids = set()
    for event in [gen.next_event() for _ in range(40)]:
        record = dict(event.value or {})
        aborted_ids.add(record["event_id"])
        txn.produce(topic, key=event.key, value=serialize(record))
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
