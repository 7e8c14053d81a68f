"""What every generator shares: the event envelope, the simulated clock, seeded randomness."""

from __future__ import annotations

import math
import random
import time
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from eventlake.config import Settings

Record = dict[str, Any]


@dataclass(slots=True)
class Event:
    """One generated record before serialisation.

    ``value`` is the Avro record (None when ``raw`` carries deliberately undecodable bytes).
    ``fault`` labels an injected data-quality fault; ``anomaly`` labels a genuine domain anomaly
    (a spike, a velocity burst) that is valid data but that detectors should find.
    """

    key: str
    value: Record | None
    fault: str | None = None
    anomaly: str | None = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


class SimClock:
    """Event time in ms. With ``start_ms``: start + i/rate, deterministic; else wall-clock now."""

    def __init__(self, start_ms: int | None, rate: float) -> None:
        self.start_ms = start_ms
        self.rate = rate
        self.i = 0

    def tick(self) -> int:
        """The nominal event time of the next event (and advance)."""
        i, self.i = self.i, self.i + 1
        if self.start_ms is None:
            return int(time.time() * 1000)
        return self.start_ms + int(i * 1000 / self.rate)


def source_rng(seed: int, source: str) -> random.Random:
    """Independent, stable stream per source: the same seed gives the same events per source."""
    return random.Random(seed * 1_000_003 + zlib.crc32(source.encode()))


# uuid.UUID(int=n, version=4) clears the variant and version bits and sets them to RFC 4122, v4.
_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


def event_id(rng: random.Random) -> str:
    """A random UUID v4 string from ``rng``: ``str(uuid.UUID(int=rng.getrandbits(128), version=4))``,
    built without the ``UUID`` object (a fifth of a generator's time)."""
    h = f"{(rng.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def diurnal(hour: float) -> float:
    """Relative activity by local hour: lowest (0.15) at 04:00, highest (1.0) at 16:00."""
    return 0.575 - 0.425 * math.cos(2 * math.pi * (hour - 4) / 24)


class Generator(ABC):
    """A seeded, deterministic source of events for one topic."""

    #: source name, used in topic and subject names
    name: str
    #: the entity id field that is the Kafka key
    key_field: str

    def __init__(self, settings: Settings, seed: int, clock: SimClock) -> None:
        self.settings = settings
        self.rng = source_rng(seed, self.name)
        self.clock = clock
        self.jitter_ms = settings.sources.jitter_ms

    def event_time(self) -> int:
        """Nominal clock time plus bounded out-of-order jitter (events arrive slightly shuffled)."""
        t = self.clock.tick()
        return t - int(self.rng.random() * self.jitter_ms) if self.jitter_ms else t

    @abstractmethod
    def next_event(self) -> Event:
        """The next valid event (faults are injected afterwards, see :mod:`eventlake.sources.faults`)."""
