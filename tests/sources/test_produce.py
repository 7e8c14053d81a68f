"""Producing to the real broker through the real registry, read back with AvroDeserializer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from eventlake.config import Settings
from eventlake.kafka.admin import admin_client, provision_topics
from eventlake.services import Stack, endpoints
from eventlake.services.process import wait_until
from eventlake.sources import GENERATORS, make_generator
from eventlake.sources.faults import FaultInjector
from tests.conftest import MakeSettings
from tests.streams import send

START = 1_767_225_600_000
EVENTLAKE = str(Path(sys.executable).parent / "eventlake")


def isolated(stack: Stack, make_settings: MakeSettings) -> Settings:
    """The shared stack's settings with topic names of our own."""
    prefix = f"t{uuid.uuid4().hex[:6]}."
    settings = make_settings(
        "prod",
        home=stack.settings.home,
        s3={"local": True},
        topics={"raw_prefix": f"{prefix}raw.", "dlq_prefix": f"{prefix}dlq.", "alerts": f"{prefix}alerts"},
    )
    provision_topics(admin_client(endpoints(settings).kafka_bootstrap), settings.topics.specs(), 1)
    return settings


def consume(bootstrap: str, registry_url: str, topic: str, expected: int) -> list[dict[str, Any]]:
    de = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    out: list[dict[str, Any]] = []
    idle = 0
    try:
        while idle < (3 if len(out) >= expected else 30):
            msg = c.poll(1.0)
            if msg is None:
                idle += 1
                continue
            assert msg.error() is None, msg.error()
            idle = 0
            headers = {k: v.decode() for k, v in (msg.headers() or [])}
            value: Any = None
            if headers.get("eventlake-fault") not in ("undecodable", "garbage_body"):
                value = de(msg.value(), SerializationContext(topic, MessageField.VALUE))
            out.append(
                {
                    "key": msg.key().decode(),
                    "partition": msg.partition(),
                    "headers": headers,
                    "value": value,
                    "raw": msg.value(),
                }
            )
    finally:
        c.close()
    return out


@pytest.mark.parametrize("source", list(GENERATORS))
def test_produce_seeded_records_read_back_with_avro(stack: Stack, make_settings: MakeSettings, source: str) -> None:
    settings = isolated(stack, make_settings)
    live = endpoints(settings)
    n = 1500
    summary = send(settings, live, [source], n, seed=11, start_ms=START, faults=0.0)
    assert summary.sent == summary.delivered == n and summary.failed == 0
    got = consume(live.kafka_bootstrap, live.registry_url, settings.topics.raw(source), n)
    assert len(got) == n
    key_field = GENERATORS[source].key_field
    assert all(r["key"] == r["value"][key_field] for r in got)
    assert len({r["partition"] for r in got}) == 6, "keys spread over all partitions"
    assert all(all(r["value"][f] is not None for f in settings.sources.required[source]) for r in got)
    # Deterministic: what is in Kafka is exactly what the seeded generator makes offline.
    gen = make_generator(settings, source, seed=11, start_ms=START, rate=settings.sources.default_rate)
    expected = {e.value["event_id"]: e.value for e in (gen.next_event() for _ in range(n)) if e.value}
    for r in got:
        v = dict(r["value"])
        v["event_time"] = int(v["event_time"].timestamp() * 1000)  # the deserializer gives datetimes
        assert v == expected[v["event_id"]]


def test_fault_labels_in_headers_add_up(stack: Stack, make_settings: MakeSettings) -> None:
    settings = isolated(stack, make_settings)
    live = endpoints(settings)
    n, fraction = 2000, 0.05
    summary = send(settings, live, ["transactions"], n, seed=3, start_ms=START, faults=fraction)
    got = consume(live.kafka_bootstrap, live.registry_url, settings.topics.raw("transactions"), n)
    labels = Counter(r["headers"].get("eventlake-fault") for r in got)
    del labels[None]
    assert sum(labels.values()) == n * fraction == sum(summary.sources["transactions"].faults.values())
    assert labels == summary.sources["transactions"].faults
    ids = Counter(r["value"]["event_id"] for r in got if r["value"])
    assert sum(c - 1 for c in ids.values()) == labels["duplicate"]
    assert all(
        r["raw"][0] != 0 or r["raw"][1:5] == b"\x7f\xff\xff\x00"
        for r in got
        if r["headers"].get("eventlake-fault") == "undecodable"
    )
    # Garbage bodies carry the topic's real schema id, the one every good record has.
    good_ids = {r["raw"][1:5] for r in got if r["value"]}
    garbage = [r for r in got if r["headers"].get("eventlake-fault") == "garbage_body"]
    assert garbage and {r["raw"][1:5] for r in garbage} == good_ids


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EVENTLAKE, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=120, check=False
    )


def test_unreachable_registry_or_broker_is_a_quick_clear_error(stack: Stack, make_settings: MakeSettings) -> None:
    settings = isolated(stack, make_settings)
    env = {
        "EVENTLAKE_HOME": str(stack.settings.home),
        "EVENTLAKE_S3_LOCAL": "true",
        "EVENTLAKE_TOPICS_RAW_PREFIX": settings.topics.raw_prefix,
    }
    res = _cli(
        "produce",
        "--source",
        "iot_sensors",
        "--count",
        "10",
        env={**env, "EVENTLAKE_REGISTRY_URL": "http://127.0.0.1:9"},
    )
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert res.returncode == 1 and len(errors) == 1 and "unreachable" in errors[0], res.stderr
    res = _cli(
        "produce", "--source", "iot_sensors", "--count", "10", env={**env, "EVENTLAKE_KAFKA_BOOTSTRAP": "127.0.0.1:9"}
    )
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert res.returncode == 1 and len(errors) == 1 and "Kafka" in errors[0], res.stderr


def test_missing_topic_is_reported_not_waited_for(stack: Stack) -> None:
    env = {
        "EVENTLAKE_HOME": str(stack.settings.home),
        "EVENTLAKE_S3_LOCAL": "true",
        "EVENTLAKE_TOPICS_RAW_PREFIX": "nonexistent.",
    }
    res = _cli("produce", "--source", "iot_sensors", "--count", "10", env=env)
    assert res.returncode == 1 and "nonexistent.iot_sensors" in res.stderr and "topics create" in res.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_flushes_and_prints_the_summary(
    stack: Stack, make_settings: MakeSettings, sig: signal.Signals
) -> None:
    """Both stop the loop through an event (eventlake.stopping), never by an exception raised inside a
    delivery report; SIGTERM used to end the process with records in flight and no summary."""
    settings = isolated(stack, make_settings)
    env = {
        **os.environ,
        "EVENTLAKE_HOME": str(stack.settings.home),
        "EVENTLAKE_S3_LOCAL": "true",
        "EVENTLAKE_TOPICS_RAW_PREFIX": settings.topics.raw_prefix,
    }
    proc = subprocess.Popen(
        [EVENTLAKE, "produce", "--source", "iot_sensors", "--rate", "400", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    # A long-running producer serves /metrics and /health; its record says where.
    record = stack.settings.home / "run" / "producer.json"
    assert wait_until(record.exists, timeout=30), "no producer metrics record"
    url = json.loads(record.read_text())["url"]
    time.sleep(6)
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    produced = [
        ln for ln in metrics.splitlines() if ln.startswith('eventlake_records_produced_total{source="iot_sensors"}')
    ]
    assert produced and float(produced[0].split()[-1]) > 100, metrics[:500]
    assert "eventlake_produce_latency_seconds_bucket" in metrics
    ready = httpx.get(f"{url}/health/ready", timeout=10)
    assert ready.status_code == 200 and set(ready.json()["checks"]) == {"kafka", "schema_registry"}
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert not record.exists()
    summary = json.loads(stdout)
    assert summary["interrupted"] and summary["sent"] > 100 and summary["delivered"] == summary["sent"]
    live = endpoints(settings)
    assert (
        len(consume(live.kafka_bootstrap, live.registry_url, settings.topics.raw("iot_sensors"), summary["sent"]))
        == summary["sent"]
    )


@pytest.mark.e2e
def test_broker_restart_mid_run_loses_and_duplicates_nothing(make_settings: MakeSettings) -> None:
    settings = make_settings("restart")
    stack = Stack(settings)
    stack.up()
    try:
        live = endpoints(settings)
        provision_topics(admin_client(live.kafka_bootstrap), settings.topics.specs(), 1)
        n = 6000
        result: dict[str, Any] = {}
        worker = threading.Thread(
            target=lambda: result.update(s=send(settings, live, ["transactions"], n, rate=1000, seed=9, start_ms=START))
        )
        worker.start()
        time.sleep(2)
        kafka = stack.service("kafka")
        kafka.stop()
        time.sleep(1)
        kafka.start()
        worker.join(timeout=300)
        summary = result["s"]
        assert summary.sent == summary.delivered == n
        got = consume(live.kafka_bootstrap, live.registry_url, settings.topics.raw("transactions"), n)
        gen = make_generator(settings, "transactions", seed=9, start_ms=START, rate=1000)
        inj = FaultInjector(settings, "transactions", gen.rng, n, 0.0)
        expected = [inj.apply(gen.next_event(), i).value["event_id"] for i in range(n)]  # type: ignore[index]
        ids = [r["value"]["event_id"] for r in got]
        assert len(ids) == len(set(ids)) == n, "no duplicates"
        assert set(ids) == set(expected), "nothing lost"
    finally:
        stack.down()
