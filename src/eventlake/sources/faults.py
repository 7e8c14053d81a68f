"""Fault injection: turn a fraction of records bad in labelled ways.

Each faulty record carries the header ``eventlake-fault: <kind>`` so tests and the data-quality
layer can count what must be caught:

* ``null_required``: a required field that the schema allows to be null (see data/schemas) is null;
* ``out_of_range``: a numeric field is outside its configured range (``sources.ranges``);
* ``duplicate``: an exact copy of an earlier record (same key, event_id and content);
* ``late``: event_time is older than the watermark (allowed lateness + jitter + 1-5 min);
* ``undecodable``: bytes that are not Avro in the wire format, or carry an unknown schema id;
* ``garbage_body``: the wire format under the topic's real schema id, but an Avro body that is not
  a record of it: the first field's length says 1-2 GiB and a few random bytes follow (a decoder
  that allocates what the length says runs out of memory; eventlake's must reject the record).

With a known record count the number of faults is exactly ``round(count * fraction)``, spread
evenly over the kinds; for an endless run each record is faulty with probability ``fraction``.
"""

from __future__ import annotations

import copy
import json
import random
from collections import deque
from pathlib import Path

from eventlake.config import Settings
from eventlake.sources.base import Event, Record

KINDS = ("null_required", "out_of_range", "duplicate", "late", "undecodable", "garbage_body")
UNKNOWN_SCHEMA_ID = 0x7FFFFF00
FAULT_HEADER = "eventlake-fault"
ANOMALY_HEADER = "eventlake-anomaly"


def nullable_required(schema_file: Path, required: tuple[str, ...]) -> list[str]:
    """Required fields whose Avro type is a union with null: the ones a real upstream may null."""
    fields = json.loads(schema_file.read_text())["fields"]
    return [f["name"] for f in fields if f["name"] in required and isinstance(f["type"], list) and "null" in f["type"]]


#: A record is late against the newest event time its partition has seen; among the first records of
#: a stream a partition has seen none, so a ``late`` fault there would not be late at all.
LATE_AFTER = 200


def _late_not_first(planned: dict[int, str]) -> dict[int, str]:
    """``planned`` with every ``late`` fault among the first :data:`LATE_AFTER` records swapped with a
    later fault of another kind (the count of each kind stays)."""
    early = sorted(p for p, k in planned.items() if k == "late" and p < LATE_AFTER)
    later = sorted(p for p, k in planned.items() if k != "late" and p >= LATE_AFTER)
    for a, b in zip(early, later, strict=False):
        planned[a], planned[b] = planned[b], planned[a]
    return planned


def zigzag_varint(n: int) -> bytes:
    """``n`` as Avro encodes an int or long (zig-zag, then 7 bits per byte)."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        low, z = z & 0x7F, z >> 7
        out.append(low | (0x80 if z else 0))
        if not z:
            return bytes(out)


class FaultInjector:
    """``schema_id``: the registry id the producer writes under (what ``garbage_body`` records carry)."""

    def __init__(
        self,
        settings: Settings,
        source: str,
        rng: random.Random,
        count: int | None,
        fraction: float,
        *,
        schema_id: int = 1,
    ) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError(f"fault fraction must be within [0, 1], got {fraction}")
        self.rng = rng
        self.fraction = fraction
        self.schema_id = schema_id
        self.nullable = nullable_required(settings.schemas_dir / f"{source}.avsc", settings.sources.required[source])
        self.ranges = settings.sources.ranges.get(source, {})
        self.late_ms = (settings.streaming.allowed_lateness_s * 1000) + settings.sources.jitter_ms
        self.history: deque[Event] = deque(maxlen=1000)
        self.planned: dict[int, str] = {}
        if count is not None and fraction > 0:
            positions = rng.sample(range(count), round(count * fraction))
            kinds = [KINDS[j % len(KINDS)] for j in range(len(positions))]
            rng.shuffle(kinds)
            self.planned = _late_not_first(dict(zip(positions, kinds, strict=True)))
        self.endless = count is None

    def kind_for(self, i: int) -> str | None:
        if self.endless:
            return self.rng.choice(KINDS) if self.fraction and self.rng.random() < self.fraction else None
        return self.planned.get(i)

    def apply(self, event: Event, i: int) -> Event:
        """The ``i``-th record as sent: ``event`` itself, or a labelled faulty version of it."""
        kind = self.kind_for(i)
        if kind == "duplicate" and not self.history:
            kind = "null_required"  # nothing to duplicate yet (the first record): keep the count
        if kind == "late" and self.endless and len(self.history) < LATE_AFTER:
            kind = "null_required"
        if kind == "out_of_range" and not self._range_fields(event.value):
            kind = "null_required"
        if kind is None:
            self.history.append(event)
            return event
        bad = self._make(kind, event)
        bad.fault = kind
        bad.headers[FAULT_HEADER] = kind
        return bad

    def _range_fields(self, value: Record | None) -> list[str]:
        return [f for f in self.ranges if value is not None and isinstance(value.get(f), int | float)]

    def _make(self, kind: str, event: Event) -> Event:
        value = copy.deepcopy(event.value) if event.value is not None else None
        assert value is not None
        if kind == "null_required":
            value[self.rng.choice(self.nullable)] = None
        elif kind == "out_of_range":
            field = self.rng.choice(self._range_fields(value))
            bounds = self.ranges[field]
            if bounds.max is not None:
                bad = bounds.max + 1 + abs(bounds.max) * self.rng.uniform(0.5, 10)
            else:
                assert bounds.min is not None
                bad = bounds.min - 1 - abs(bounds.min) * self.rng.uniform(0.5, 10)
            value[field] = int(bad) if isinstance(value[field], int) else round(bad, 3)
        elif kind == "duplicate":
            original = self.rng.choice(self.history)
            return Event(key=original.key, value=copy.deepcopy(original.value), headers=dict(original.headers))
        elif kind == "late":
            value["event_time"] -= self.late_ms + self.rng.randrange(60_000, 300_000)
        elif kind == "undecodable":
            body = self.rng.randbytes(self.rng.randrange(8, 64))
            # Half are not the wire format at all (magic byte must be 0), half name an unknown schema.
            raw = b"\xff" + body if self.rng.random() < 0.5 else b"\x00" + UNKNOWN_SCHEMA_ID.to_bytes(4, "big") + body
            return Event(key=event.key, value=None, raw=raw, headers=dict(event.headers))
        elif kind == "garbage_body":
            length = zigzag_varint(self.rng.randrange(2**30, 2**31))
            raw = b"\x00" + self.schema_id.to_bytes(4, "big") + length + self.rng.randbytes(self.rng.randrange(4, 32))
            return Event(key=event.key, value=None, raw=raw, headers=dict(event.headers))
        return Event(key=event.key, value=value, anomaly=event.anomaly, headers=dict(event.headers))
