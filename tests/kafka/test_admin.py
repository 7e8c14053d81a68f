"""Topic provisioning against the real broker: create, idempotence, growth, drift."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
from confluent_kafka.admin import ConfigResource

from eventlake.config import TopicSettings, TopicSpec
from eventlake.kafka.admin import admin_client, provision_topics
from eventlake.services import Stack


def _topics(prefix: str, **kw: object) -> TopicSettings:
    return TopicSettings(
        sources=("a", "b"), raw_prefix=f"{prefix}raw.", dlq_prefix=f"{prefix}dlq.", alerts=f"{prefix}alerts", **kw
    )


def test_create_then_unchanged_then_grow_and_drift(kafka_bootstrap: str) -> None:
    admin = admin_client(kafka_bootstrap)
    p = f"t{uuid.uuid4().hex[:6]}."
    topics = _topics(p)
    first = provision_topics(admin, topics.specs(), 1)
    assert {r.topic: r.action for r in first} == {
        f"{p}raw.a": "created",
        f"{p}raw.b": "created",
        f"{p}dlq.a": "created",
        f"{p}dlq.b": "created",
        f"{p}alerts": "created",
    }
    md = admin.list_topics(timeout=10)
    assert len(md.topics[f"{p}raw.a"].partitions) == 6 and len(md.topics[f"{p}dlq.a"].partitions) == 3
    raw = ConfigResource(ConfigResource.Type.TOPIC, f"{p}raw.a")
    configs = admin.describe_configs([raw])[raw].result(timeout=10)
    assert configs["message.timestamp.type"].value == "LogAppendTime", "the broker's clock, not the producers'"

    assert {r.action for r in provision_topics(admin, topics.specs(), 1)} == {"unchanged"}

    grown = _topics(p, raw_spec=TopicSpec(partitions=8))
    results = {r.topic: r for r in provision_topics(admin, grown.specs(), 1)}
    assert results[f"{p}raw.a"].action == "partitions_increased" and results[f"{p}raw.a"].detail == "6 -> 8"
    # provision_topics returns once the brokers' metadata shows the change, not only the controller.
    assert len(admin.list_topics(timeout=10).topics[f"{p}raw.b"].partitions) == 8

    shrunk = _topics(p, raw_spec=TopicSpec(partitions=4, retention_ms=3_600_000, timestamp_type="CreateTime"))
    results = {r.topic: r for r in provision_topics(admin, shrunk.specs(), 1)}
    bad = results[f"{p}raw.a"]
    assert bad.action == "mismatch" and "has 8 partitions" in bad.detail and "retention.ms" in bad.detail
    assert "message.timestamp.type=LogAppendTime (config says CreateTime)" in bad.detail
    assert len(admin.list_topics(timeout=10).topics[f"{p}raw.a"].partitions) == 8, "never decreased"


def test_cli_topics_create_registers_project_schemas(stack: Stack, registry_url: str) -> None:
    env = {**os.environ, "EVENTLAKE_HOME": str(stack.settings.home), "EVENTLAKE_S3_LOCAL": "true"}
    cmd = [str(Path(sys.executable).parent / "eventlake"), "topics", "create", "--strict"]
    for _ in range(2):
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
        assert res.returncode == 0, res.stderr
    md = admin_client(stack.service("kafka").endpoint() or "").list_topics(timeout=10)
    for source in ("user_activity", "iot_sensors", "transactions"):
        assert len(md.topics[f"raw.{source}"].partitions) == 6
        assert f"dlq.{source}" in md.topics
        versions = httpx.get(f"{registry_url}/subjects/raw.{source}-value/versions").json()
        assert versions == [1], "registered once, idempotent"
        schema = json.loads(httpx.get(f"{registry_url}/subjects/raw.{source}-value/versions/1/schema").text)
        assert schema["fields"][1]["type"]["logicalType"] == "timestamp-millis"
    assert "eventlake.alerts" in md.topics
