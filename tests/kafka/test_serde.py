"""fastavro wire-format serializer: byte for byte what confluent-kafka's AvroSerializer writes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from eventlake.config import Settings, load_settings
from eventlake.kafka.serde import WireSerializer, registered_serializer, wire_prefix
from eventlake.sources import GENERATORS, make_generator
from eventlake.sources.faults import FaultInjector

START = 1_767_225_600_000


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


def _records(settings: Settings, source: str, n: int) -> list[dict[str, Any]]:
    """Generated records with faults (nulls in nullable fields, out-of-range values, late times)."""
    gen = make_generator(settings, source, seed=4, start_ms=START, rate=100)
    inj = FaultInjector(settings, source, gen.rng, n, 0.2)
    return [e.value for e in (inj.apply(gen.next_event(), i) for i in range(n)) if e.value is not None]


@pytest.mark.parametrize("source", list(GENERATORS))
def test_same_bytes_as_the_stock_avro_serializer(registry_url: str, settings: Settings, source: str) -> None:
    client = SchemaRegistryClient({"url": registry_url})
    subject = f"t{uuid.uuid4().hex[:6]}.raw.{source}"
    schema_str = (settings.schemas_dir / f"{source}.avsc").read_text()
    ours = registered_serializer(client, f"{subject}-value", schema_str)
    stock = AvroSerializer(client, schema_str, conf={"auto.register.schemas": False})
    ctx = SerializationContext(subject, MessageField.VALUE)
    records = _records(settings, source, 2000)
    # Enums, maps, nested records as generated; every field that is ever null also all at once.
    nullable = [f for f, v in records[0].items() if any(r[f] is None for r in records)]
    assert set(settings.sources.required[source]) & set(nullable), "faults put nulls into required fields"
    all_null = dict(records[0], **{f: None for f in nullable})
    # timestamp-millis given as an aware datetime encodes as the same long.
    as_datetime = dict(records[1], event_time=dt.datetime.fromtimestamp(records[1]["event_time"] / 1000, dt.UTC))
    for record in [*records, all_null, as_datetime]:
        assert ours(record) == stock(record, ctx)
    assert ours(records[0])[:5] == wire_prefix(ours.schema_id) == b"\x00" + ours.schema_id.to_bytes(4, "big")
    # Looking up instead of registering finds the same id; an unregistered subject is an error.
    assert registered_serializer(client, f"{subject}-value", schema_str, register=False).schema_id == ours.schema_id
    with pytest.raises(SchemaRegistryError):
        registered_serializer(client, f"{subject}-nope-value", schema_str, register=False)


def test_prefix_and_bad_ids() -> None:
    ser = WireSerializer(0x01020304, '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}')
    assert ser({"a": 1}) == b"\x00\x01\x02\x03\x04\x02"
    with pytest.raises(ValueError):
        wire_prefix(2**32)
    with pytest.raises(ValueError):
        wire_prefix(-1)
