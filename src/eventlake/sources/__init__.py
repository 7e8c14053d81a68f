"""Simulated sources: user activity, IoT sensors, payment transactions (seeded, deterministic).

``make_generator(settings, "iot_sensors", seed=7, start_ms=..., rate=100)`` gives a generator
whose ``next_event()`` yields valid events; :mod:`eventlake.sources.faults` spoils a labelled
fraction; :func:`eventlake.sources.produce.produce` sends them to Kafka as Avro.
"""

from __future__ import annotations

from eventlake.config import Settings
from eventlake.sources.base import Event, Generator, SimClock
from eventlake.sources.iot_sensors import IotSensorsGenerator
from eventlake.sources.transactions import TransactionsGenerator
from eventlake.sources.user_activity import UserActivityGenerator

GENERATORS: dict[str, type[Generator]] = {
    g.name: g for g in (UserActivityGenerator, IotSensorsGenerator, TransactionsGenerator)
}

__all__ = ["GENERATORS", "Event", "Generator", "make_generator"]


def make_generator(settings: Settings, source: str, *, seed: int, start_ms: int | None, rate: float) -> Generator:
    try:
        cls = GENERATORS[source]
    except KeyError:
        raise ValueError(f"unknown source {source!r}; choose from {', '.join(GENERATORS)}") from None
    return cls(settings, seed, SimClock(start_ms, rate))
