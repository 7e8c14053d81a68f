"""The produce loop: generators -> fault injection -> Avro (registry) -> idempotent producer.

Several sources are interleaved round-robin; ``rate`` is per source (``--rate 100`` with
``--source all`` sends 300 ev/s in total) and also drives the simulated clock. Without a rate,
records are sent as fast as the producer takes them and the clock uses ``sources.default_rate``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from eventlake.config import Settings
from eventlake.errors import EventlakeError, UnreachableError
from eventlake.kafka.producer import EventProducer
from eventlake.services.kafka import admin_client, kafka_health
from eventlake.sources import Generator, make_generator
from eventlake.sources.faults import ANOMALY_HEADER, FaultInjector

log = logging.getLogger(__name__)


class Pacer:
    """Holds a steady rate: the i-th call returns no earlier than t0 + i/rate (no drift, no bursts
    beyond the lag it is catching up on). ``rate=None`` never waits."""

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.t0: float | None = None
        self.i = 0

    def wait(self) -> None:
        if self.rate is None:
            return
        now = self.clock()
        if self.t0 is None:
            self.t0 = now
        due = self.t0 + self.i / self.rate
        self.i += 1
        if due > now:
            self.sleep(due - now)


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
    serialize: AvroSerializer
    ctx: SerializationContext
    tally: SourceSummary

    def send_next(self, producer: EventProducer, i: int) -> None:
        event = self.faults.apply(self.generator.next_event(), i)
        if event.anomaly:
            event.headers[ANOMALY_HEADER] = event.anomaly
            self.tally.anomalies[event.anomaly] += 1
        if event.fault:
            self.tally.faults[event.fault] += 1
        payload = event.raw if event.raw is not None else self.serialize(event.value, self.ctx)
        assert payload is not None
        producer.send(self.tally.topic, event.key, payload, event.headers)


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
        schema = Schema((settings.schemas_dir / f"{source}.avsc").read_text(), "AVRO")
        try:
            client.register_schema(f"{topic}-value", schema)  # idempotent; producers agree on the id
        except SchemaRegistryError as err:
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
                FaultInjector(settings, source, gen.rng, count, faults),
                AvroSerializer(client, schema.schema_str, conf={"auto.register.schemas": False}),
                SerializationContext(topic, MessageField.VALUE),
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
    Ctrl-C stops generating, flushes what is in flight and returns the summary (``interrupted``).
    """
    health = kafka_health(bootstrap, timeout=10)
    if not health.ok:
        raise UnreachableError(f"Kafka: {health.detail}", "run `eventlake up` or check EVENTLAKE_KAFKA_BOOTSTRAP")
    existing = admin_client(bootstrap).list_topics(timeout=10).topics
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
    producer = EventProducer(bootstrap, sources={lane.tally.topic: lane.tally.source for lane in lanes})
    pacer = Pacer(rate)
    started = time.monotonic()
    interrupted = False
    i = 0
    try:
        while (count is None or i < count) and not (stop is not None and stop.is_set()):
            pacer.wait()
            for lane in lanes:
                lane.send_next(producer, i)
            i += 1
            if progress is not None and i % 500 == 0:
                progress(i)
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted; flushing in-flight records", extra={"sent": sum(producer.sent.values())})
    finally:
        left = producer.flush(120)
        if left:
            log.error("records still undelivered after flush", extra={"count": left})
    elapsed = time.monotonic() - started
    if progress is not None:
        progress(i)
    for lane in lanes:
        t = lane.tally
        t.sent, t.delivered = producer.sent[t.topic], producer.delivered[t.topic]
        t.failed = t.sent - t.delivered  # failed reports plus whatever never got a report
    return ProduceSummary({lane.tally.source: lane.tally for lane in lanes}, elapsed, interrupted)
