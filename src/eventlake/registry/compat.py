"""Avro parsing, canonical form and compatibility levels.

Compatibility uses Apache Avro's own schema-resolution checker
(``avro.compatibility.ReaderWriterCompatibilityChecker``); this module only maps the registry's
levels onto reader/writer pairs:

* BACKWARD: the new schema (reader) reads data written with the latest one.
* FORWARD: the latest schema (reader) reads data written with the new one.
* FULL: both. ``*_TRANSITIVE``: against every live version, not just the latest.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum

import avro.errors
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from eventlake.registry.errors import invalid_schema


class Level(StrEnum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        return self.value.startswith(("FORWARD", "FULL"))


DEFAULT_LEVEL = Level.BACKWARD


def parse(schema_text: str) -> avro.schema.Schema:
    """Parse an Avro schema; a bad one raises the registry's 42201 error."""
    try:
        return avro.schema.parse(schema_text)
    except (avro.errors.AvroException, ValueError, TypeError, KeyError) as err:
        raise invalid_schema(str(err) or type(err).__name__) from err
    except RecursionError as err:  # nested past the parser's stack: the schema's fault, not a 500
        raise invalid_schema("nested too deeply") from err


def canonical(schema_text: str) -> str:
    """The stored form: parsed and re-serialised compactly, so equal schemas compare equal.

    Unlike Avro's Parsing Canonical Form it keeps defaults, aliases, docs and logical types,
    which compatibility and consumers need.
    """
    return json.dumps(parse(schema_text).to_json(), separators=(",", ":"))


def fingerprint(canonical_text: str, schema_type: str = "AVRO") -> str:
    return hashlib.sha256(f"{schema_type}\0{canonical_text}".encode()).hexdigest()


def _can_read(reader: avro.schema.Schema, writer: avro.schema.Schema, label: str) -> list[str]:
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    return [
        f"{label}: {msg} at {loc}" for msg, loc in zip(sorted(result.messages), sorted(result.locations), strict=False)
    ] or [label]


def check(new_text: str, existing: list[tuple[int, str]], level: Level) -> list[str]:
    """Reasons why ``new_text`` breaks ``level`` against ``existing`` (version, schema), oldest first.

    An empty list means compatible.
    """
    if level is Level.NONE or not existing:
        return []
    targets = existing if level.transitive else existing[-1:]
    new = parse(new_text)
    problems: list[str] = []
    for version, text in targets:
        old = parse(text)
        if level.backward:
            problems += _can_read(new, old, f"new schema cannot read data written with version {version}")
        if level.forward:
            problems += _can_read(old, new, f"version {version} cannot read data written with the new schema")
    return problems
