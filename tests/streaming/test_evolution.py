"""Schema evolution mid-stream: a compatible v2 (added field with default) is registered and used by
producers while the job runs; rows of both versions land in silver, and gold counts them all."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from deltalake import DeltaTable

from eventlake.services import Stack, endpoints
from eventlake.sources import make_generator
from eventlake.streaming.jobs import start_jobs
from tests.conftest import MakeSettings
from tests.streaming import recompute
from tests.streaming.test_pipeline import START, assert_gold_matches, pipeline_settings

pytestmark = pytest.mark.e2e


def test_new_schema_version_mid_stream(stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Any) -> None:
    settings = pipeline_settings(stack, make_settings, tmp_path)
    settings.topics.sources = ("iot_sensors",)
    live = endpoints(settings)
    topic = settings.topics.raw("iot_sensors")
    client = SchemaRegistryClient({"url": live.registry_url})
    v1 = (settings.schemas_dir / "iot_sensors.avsc").read_text()
    doc = json.loads(v1)
    doc["fields"].append({"name": "calibrated", "type": "boolean", "default": False, "doc": "Calibrated this month."})
    v2 = json.dumps(doc)
    gen = make_generator(settings, "iot_sensors", seed=4, start_ms=START, rate=100)
    producer = Producer({"bootstrap.servers": live.kafka_bootstrap, "enable.idempotence": True})
    ctx = SerializationContext(topic, MessageField.VALUE)

    def send(schema: str, n: int, extra: dict[str, Any]) -> None:
        serialize = AvroSerializer(client, schema)
        for _ in range(n):
            event = gen.next_event()
            assert event.value is not None
            producer.produce(topic, key=event.key, value=serialize({**event.value, **extra}, ctx))
        assert producer.flush(30) == 0

    send(v1, 400, {})
    start_jobs(spark, settings, live, ["bronze", "silver", "gold"], until_idle=True)
    send(v2, 400, {"calibrated": True})  # registers v2 (BACKWARD-compatible) mid-stream
    assert client.get_versions(f"{topic}-value") == [1, 2]
    start_jobs(spark, settings, live, ["bronze", "silver", "gold"], until_idle=True)

    silver = DeltaTable(f"{settings.lake_uri.removeprefix('file://')}/silver/iot_sensors").to_pyarrow_table()
    assert silver.num_rows == 800
    assert {r["_schema_id"] for r in silver.select(["_schema_id"]).to_pylist()} == {
        client.get_version(f"{topic}-value", 1).schema_id,
        client.get_version(f"{topic}-value", 2).schema_id,
    }
    flags = [r["calibrated"] for r in silver.select(["calibrated"]).to_pylist()]
    assert flags.count(True) == 400 and flags.count(None) + flags.count(False) == 400
    raw = recompute.read_topic(live.kafka_bootstrap, live.registry_url, topic, 800)
    assert_gold_matches(settings, "iot_sensors", recompute.gold("iot_sensors", raw.records))
    # The shipped rules watch for schema drift: the batch that brought v2 failed it, once.
    with psycopg.connect(live.postgres_url) as conn:
        drift = conn.execute(
            "SELECT batch_id, failed FROM dq_metrics WHERE source = 'iot_sensors' AND rule = 'schema_drift'"
            " ORDER BY batch_id"
        ).fetchall()
        alert = conn.execute(
            "SELECT status, message FROM dq_alerts WHERE key = 'dq:iot_sensors:schema_drift'"
        ).fetchone()
    assert [f for _, f in drift] == [0, 1]
    v2_id = client.get_version(f"{topic}-value", 2).schema_id
    assert alert is not None and alert[0] == "firing" and f"new schema id {v2_id}" in alert[1]
