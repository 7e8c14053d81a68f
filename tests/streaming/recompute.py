"""An independent recompute of the gold tables straight from the raw topics.

It shares no code with eventlake.streaming: records are read with a plain consumer, decoded with
fastavro using writer schemas fetched by id, faulty records are skipped by their generator labels
(``eventlake-fault`` header, duplicates included), and the aggregates are computed in Python.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fastavro
import httpx
from confluent_kafka import Consumer


@dataclass
class Raw:
    records: list[dict[str, Any]] = field(default_factory=list)  # decoded, unlabelled
    labels: Counter[str] = field(default_factory=Counter)
    total: int = 0
    headers: list[dict[str, str]] = field(default_factory=list)  # of every record, in read order


def read_topic(bootstrap: str, registry_url: str, topic: str, expected: int, *, decode: bool = True) -> Raw:
    schemas: dict[int, Any] = {}
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    raw = Raw()
    idle = 0
    while idle < (3 if raw.total >= expected else 30):
        msg = c.poll(1.0)
        if msg is None:
            idle += 1
            continue
        assert msg.error() is None
        idle = 0
        raw.total += 1
        headers = {k: v.decode() for k, v in (msg.headers() or [])}
        raw.headers.append(headers)
        label = headers.get("eventlake-fault")
        if not decode:
            continue
        if label:
            raw.labels[label] += 1
            continue
        value = msg.value()
        sid = int.from_bytes(value[1:5], "big")
        if sid not in schemas:
            text = httpx.get(f"{registry_url}/schemas/ids/{sid}").json()["schema"]
            schemas[sid] = fastavro.parse_schema(json.loads(text))
        raw.records.append(fastavro.schemaless_reader(io.BytesIO(value[5:]), schemas[sid]))
    c.close()
    return raw


def _minute(t: dt.datetime) -> dt.datetime:
    return t.replace(second=0, microsecond=0)


def p95(values: list[float]) -> float:
    """Exact percentile with linear interpolation between closest ranks."""
    ordered = sorted(values)
    pos = 0.95 * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def sliding_transactions(records: list[dict[str, Any]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """5-minute windows sliding by 1 minute: (window_start, category) -> (count, amount sum)."""
    acc: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0, 0.0])
    for r in records:
        first = _minute(r["event_time"]) - dt.timedelta(minutes=4)
        for k in range(5):
            cell = acc[(first + dt.timedelta(minutes=k), r["merchant_category"])]
            cell[0] += 1
            cell[1] += r["amount"]
    return {key: (int(c), s) for key, (c, s) in acc.items()}


def hour(t: dt.datetime) -> dt.datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def day(t: dt.datetime) -> dt.datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def gold(
    source: str, records: list[dict[str, Any]], bucket: Callable[[dt.datetime], dt.datetime] = _minute
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """{(window_start, *group keys): (*aggregates)} in the contract's column order; ``bucket``: the
    window an event time falls in (1-minute tumbling by default; ``hour``/``day`` for the rollups)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    keys = {
        "user_activity": ("event_type",),
        "iot_sensors": ("device_id", "sensor_type"),
        "transactions": ("merchant_category",),
    }[source]
    for r in records:
        groups[(bucket(r["event_time"]), *(r[k] for k in keys))].append(r)
    out: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for key, rows in groups.items():
        if source == "user_activity":
            out[key] = (len(rows), len({r["user_id"] for r in rows}))
        elif source == "iot_sensors":
            values = [r["value"] for r in rows]
            out[key] = (len(rows), sum(values) / len(values), min(values), max(values), p95(values))
        else:
            out[key] = (len(rows), sum(r["amount"] for r in rows), sum(r["status"] == "DECLINED" for r in rows))
    return out
