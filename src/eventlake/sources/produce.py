"""The produce loop: generators -> fault injection -> Avro (registry) -> idempotent producer.

Several sources are interleaved round-robin, a short run of records per source at a time;
``rate`` is per source (``--rate 100`` with ``--source all`` sends 300 ev/s in total) and also
drives the simulated clock. Without a rate, records are sent as fast as the producer takes them
and the clock uses ``sources.default_rate``. Values are written by
:class:`eventlake.kafka.serde.WireSerializer` (fastavro, Confluent wire format, schema id from
the registry once at start).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from eventlake.config import Settings
from eventlake.errors import EventlakeError, RegistryUnavailableError, UnreachableError
from eventlake.kafka.admin import admin_client, kafka_health
from eventlake.kafka.producer import EventProducer
from eventlake.kafka.security import client_security
from eventlake.kafka.serde import WireSerializer, registered_serializer
from eventlake.registry.client import UNAVAILABLE_HINT
from eventlake.sources import Generator, make_generator
from eventlake.sources.faults import ANOMALY_HEADER, FaultInjector

log = logging.getLogger(__name__)


#: Records per source between two looks at the pacer / stop flag: about 5 ms of records at the
#: given rate (at least 1), and this many when unthrottled.
MAX_STEP = 256


def step_for(rate: float | None) -> int:
    return MAX_STEP if rate is None else max(1, min(MAX_STEP, int(rate * 0.005)))


class Pacer:
    """Holds a steady rate: a call returns no earlier than t0 + i/rate, i the number of records
    paced before it (no drift, no bursts beyond the lag it is catching up on). ``wait(n)`` paces
    ``n`` records at once. ``rate=None`` never waits. ``sleep`` may return early; the pacer
    sleeps again until due."""

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.t0: float | None = None
        self.i = 0

    def wait(self, n: int = 1) -> None:
        if self.rate is None:
            return
        now = self.clock()
        if self.t0 is None:
            self.t0 = now
        due = self.t0 + self.i / self.rate
        self.i += n
        while due > now:
            self.sleep(due - now)
            now = self.clock()


@dataclass
class SourceSummary:
    source: str
    topic: str
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    anomalies: Counter[str] = field(default_factory=Counter)


@dataclass
class ProduceSummary:
    sources: dict[str, SourceSummary]
    seconds: float
    interrupted: bool = False

    @property
    def sent(self) -> int:
        return sum(s.sent for s in self.sources.values())

    @property
    def delivered(self) -> int:
        return sum(s.delivered for s in self.sources.values())

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.sources.values())

    @property
    def events_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[int], None]


def registry_client(url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": url, "timeout": 10, "max.retries": 1})


@dataclass
class _Lane:
    """One source's path: generator -> faults -> serializer -> topic, with its tally."""

    generator: Generator
    faults: FaultInjector
    serialize: WireSerializer
    tally: SourceSummary

    def send(self, producer: EventProducer, start: int, n: int) -> None:
        """Generate, spoil, serialize and queue records ``start`` .. ``start + n - 1``."""
        next_event, apply, serialize, send = self.generator.next_event, self.faults.apply, self.serialize, producer.send
        topic, anomalies, faults = self.tally.topic, self.tally.anomalies, self.tally.faults
        for i in range(start, start + n):
            event = apply(next_event(), i)
            if event.anomaly:
                # Set on the event itself: a later duplicate of it copies the header too.
                event.headers[ANOMALY_HEADER] = event.anomaly
                anomalies[event.anomaly] += 1
            if event.fault:
                faults[event.fault] += 1
            if event.raw is not None:
                payload = event.raw
            else:
                assert event.value is not None
                payload = serialize(event.value)
            send(topic, event.key, payload, event.headers)


def _open_lanes(
    settings: Settings,
    registry_url: str,
    sources: list[str],
    *,
    count: int | None,
    clock_rate: float,
    seed: int,
    start_ms: int | None,
    faults: float,
) -> list[_Lane]:
    client = registry_client(registry_url)
    lanes = []
    for source in sources:
        topic = settings.topics.raw(source)
        schema = (settings.schemas_dir / f"{source}.avsc").read_text()
        try:
            # Registered (idempotent: producers agree on the id) once, here; the id is cached.
            serialize = registered_serializer(client, f"{topic}-value", schema)
        except SchemaRegistryError as err:
            if err.http_status_code >= 500:  # the registry (or its PostgreSQL) is down, not the schema wrong
                raise RegistryUnavailableError(
                    f"schema registry at {registry_url} answered {err.http_status_code} registering {source}.avsc:"
                    f" {' '.join(str(err.error_message).split())[:200]}",
                    UNAVAILABLE_HINT,
                    status=err.http_status_code,
                ) from err
            raise EventlakeError(f"schema {source}.avsc rejected by the registry: {err}") from err
        except Exception as err:  # transport errors; the client's HTTP library varies by version
            raise UnreachableError(
                f"schema registry at {registry_url} is unreachable: {type(err).__name__}: {err}",
                "run `eventlake up` or check EVENTLAKE_REGISTRY_URL",
            ) from err
        gen = make_generator(settings, source, seed=seed, start_ms=start_ms, rate=clock_rate)
        lanes.append(
            _Lane(
                gen,
                FaultInjector(settings, source, gen.rng, count, faults, schema_id=serialize.schema_id),
                serialize,
                SourceSummary(source, topic),
            )
        )
    return lanes


def produce(
    settings: Settings,
    *,
    bootstrap: str,
    registry_url: str,
    sources: list[str],
    count: int | None,
    rate: float | None = None,
    seed: int = 0,
    start_ms: int | None = None,
    faults: float = 0.0,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> ProduceSummary:
    """Send ``count`` records per source (None: until ``stop`` is set or Ctrl-C); return the tally.

    Raises :class:`UnreachableError` within a bounded time if Kafka or the registry is down at start.
    ``stop`` (the CLI sets it on Ctrl-C/SIGTERM) or a KeyboardInterrupt stops generating, flushes what is
    in flight and returns the summary (``interrupted``).
    """
    security = client_security(settings)
    health = kafka_health(bootstrap, timeout=10, security=security)
    if not health.ok:
        raise UnreachableError(
            f"Kafka: {health.detail}",
            "run `eventlake up` or check EVENTLAKE_KAFKA_BOOTSTRAP (and EVENTLAKE_KAFKA_SASL_* on a secured cluster)",
        )
    existing = admin_client(bootstrap, security).list_topics(timeout=10).topics
    missing = [settings.topics.raw(s) for s in sources if settings.topics.raw(s) not in existing]
    if missing:
        # Topics are never auto-created: records would wait for message.timeout.ms, then fail.
        raise EventlakeError(f"topic(s) {', '.join(missing)} do not exist", "run `eventlake topics create`")
    lanes = _open_lanes(
        settings,
        registry_url,
        sources,
        count=count,
        clock_rate=rate or settings.sources.default_rate,
        seed=seed,
        start_ms=start_ms,
        faults=faults,
    )
    producer = EventProducer(
        bootstrap,
        sources={lane.tally.topic: lane.tally.source for lane in lanes},
        security=security,
        **{"message.timeout.ms": int(settings.kafka.producer_delivery_timeout_s * 1000)},
    )
    pacer = Pacer(rate, sleep=producer.idle)  # waiting serves delivery reports
    step = step_for(rate)
    started = time.monotonic()
    interrupted = False
    i = reported = 0
    try:
        while (count is None or i < count) and not (stop is not None and stop.is_set()):
            n = step if count is None else min(step, count - i)
            pacer.wait(n)
            for lane in lanes:
                lane.send(producer, i, n)
            i += n
            if progress is not None and i - reported >= 500:
                progress(i)
                reported = i
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted; flushing in-flight records", extra={"sent": sum(producer.sent.values())})
    finally:
        left = producer.flush(120)
        if left:
            log.error("records still undelivered after flush", extra={"count": left})
    interrupted = interrupted or (stop is not None and stop.is_set())
    elapsed = time.monotonic() - started
    if progress is not None:
        progress(i)
    for lane in lanes:
        t = lane.tally
        t.sent, t.delivered = producer.sent[t.topic], producer.delivered[t.topic]
        t.failed = t.sent - t.delivered  # failed reports plus whatever never got a report
    return ProduceSummary({lane.tally.source: lane.tally for lane in lanes}, elapsed, interrupted)
