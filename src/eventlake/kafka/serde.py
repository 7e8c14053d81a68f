"""Avro values in the Confluent wire format, written by fastavro directly.

The wire format is one magic byte ``0``, the schema id as 4 bytes big-endian, then the
schemaless Avro body. :class:`WireSerializer` produces exactly the bytes of confluent-kafka's
``AvroSerializer`` for the same schema and record (a test compares them), without its
per-record work (subject lookup, rule checks, a fresh context object per record): the
schema id is resolved once, when the serializer is made, and the fastavro schema is parsed once.

    serialize = registered_serializer(client, "raw.iot_sensors-value", schema_str)
    payload = serialize(record)
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from fastavro import parse_schema, schemaless_writer

MAGIC = 0


def wire_prefix(schema_id: int) -> bytes:
    """The 5 bytes in front of every value: magic byte 0 and the schema id (4 bytes, big-endian)."""
    if not 0 <= schema_id < 2**32:
        raise ValueError(f"schema id out of range: {schema_id}")
    return bytes((MAGIC,)) + schema_id.to_bytes(4, "big")


class WireSerializer:
    """Serialize records of one Avro schema, known by its registry id, to the wire format."""

    __slots__ = ("_prefix", "parsed_schema", "schema_id")

    def __init__(self, schema_id: int, schema_str: str) -> None:
        self.schema_id = schema_id
        self.parsed_schema: Any = parse_schema(json.loads(schema_str))
        self._prefix = wire_prefix(schema_id)

    def __call__(self, record: Mapping[str, Any]) -> bytes:
        out = io.BytesIO()
        out.write(self._prefix)
        schemaless_writer(out, self.parsed_schema, record)
        return out.getvalue()


def registered_serializer(
    client: SchemaRegistryClient, subject: str, schema_str: str, *, register: bool = True
) -> WireSerializer:
    """A serializer for ``schema_str`` under ``subject``, its id asked of the registry once.

    ``register=True`` registers the schema (idempotent: the same schema gets the same id);
    ``False`` only looks it up and fails if it is not registered under ``subject``. Registry
    errors (``SchemaRegistryError``, transport errors) propagate to the caller.
    """
    schema = Schema(schema_str, "AVRO")
    schema_id = client.register_schema(subject, schema) if register else client.lookup_schema(subject, schema).schema_id
    if schema_id is None:
        raise ValueError(f"the registry returned no schema id for {subject}")
    return WireSerializer(int(schema_id), schema_str)
