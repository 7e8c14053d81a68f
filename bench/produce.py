"""Producer throughput per source against the bare-producer ceiling and the stock serializer, in one run.

For each source, on the same seeded records:

* ``eventlake``: ``produce()`` end to end (generate -> faults -> fastavro wire format with the
  registry's schema id -> idempotent producer -> broker ack);
* ``stock``: the same ``produce()`` with each value written by confluent-kafka's stock
  ``AvroSerializer`` instead (what eventlake used before);
* ``bare``: a bare confluent-kafka producer sending pre-made bytes of the same average size with
  the same producer settings and no delivery callback: the ceiling.

Prints ev/s of each, eventlake's ratio to the bare producer and its speed-up over the stock
serializer, then the serializers alone (records/s on the same records), then one paced run of
all sources together (``--rate`` per source, like ``eventlake produce --rate R --source all``):
the rate each source held. Finally the process's peak RSS. Starts a throw-away stack (Kafka,
PostgreSQL, registry).

Each throughput figure is the best of ``--repeat`` runs (2 cores shared with the broker, and
with whatever else runs: the best run is the least disturbed one).

Run: ``.venv/bin/python bench/produce.py [--n 50000] [--repeat 3] [--rate 10000] [--seconds 20]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from eventlake.config import Settings, load_settings
from eventlake.kafka.admin import admin_client, provision_topics
from eventlake.kafka.producer import DEFAULTS
from eventlake.kafka.serde import registered_serializer
from eventlake.services import Stack, endpoints
from eventlake.sources import GENERATORS, make_generator
from eventlake.sources.produce import ProduceSummary, produce, registry_client

START = 1_767_225_600_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50_000, help="records per source and variant")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is printed")
    parser.add_argument("--rate", type=float, default=10_000, help="per-source rate of the paced run (0: skip)")
    parser.add_argument("--seconds", type=float, default=20, help="length of the paced run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-produce-") as home:
        settings = load_settings(home=Path(home))
        stack = Stack(settings)
        stack.up()
        try:
            live = endpoints(settings)
            admin = admin_client(live.kafka_bootstrap)
            provision_topics(admin, settings.topics.specs(), 1)

            def run(sources: list[str], count: int, rate: float | None = None) -> ProduceSummary:
                return produce(
                    settings,
                    bootstrap=live.kafka_bootstrap,
                    registry_url=live.registry_url,
                    sources=sources,
                    count=count,
                    rate=rate,
                    seed=1,
                    start_ms=START,
                )

            for source in GENERATORS:
                topic = settings.topics.raw(source)
                ours = stock = ceiling = 0.0
                for k in range(args.repeat):  # interleaved, so a disturbance hits all three alike
                    ours = max(ours, run([source], args.n).events_per_s)
                    with mock.patch("eventlake.sources.produce.registered_serializer", _StockSerializer):
                        stock = max(stock, run([source], args.n).events_per_s)
                    if k == 0:
                        # Average payload size of what was just sent, from the topic's bytes on the broker.
                        size = _avg_size(live.kafka_bootstrap, topic)
                    ceiling = max(ceiling, _bare(live.kafka_bootstrap, topic, args.n, size))
                print(
                    f"produce {source:<14} eventlake {ours:7.0f} ev/s  stock-serializer {stock:7.0f} ev/s  "
                    f"bare {ceiling:7.0f} ev/s  ratio {ours / ceiling:.2f} (stock {stock / ceiling:.2f})  "
                    f"x{ours / stock:.2f} vs stock  payload {size} B"
                )
            client = registry_client(live.registry_url)
            for source in GENERATORS:
                fast, stock = _serializers_alone(settings, client, source, repeat=args.repeat)
                print(
                    f"serialize {source:<14} fastavro-wire {fast:7.0f} rec/s  stock AvroSerializer {stock:7.0f} rec/s"
                )
            if args.rate > 0:
                count = int(args.rate * args.seconds)
                summary = run(list(GENERATORS), count, rate=args.rate)
                held = count / summary.seconds
                print(
                    f"paced --source all --rate {args.rate:g}: {held:7.0f} ev/s per source held "
                    f"({summary.sent / summary.seconds:.0f} ev/s total, {summary.seconds:.1f} s incl. flush, "
                    f"target {count / args.rate:.1f} s)"
                )
            print(f"produce peak_rss_mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
        finally:
            stack.down()


class _StockSerializer:
    """Stands in for :func:`registered_serializer`: registers the schema, and writes values with
    confluent-kafka's AvroSerializer."""

    def __init__(self, client: SchemaRegistryClient, subject: str, schema_str: str) -> None:
        self.schema_id = client.register_schema(subject, Schema(schema_str, "AVRO"))
        self.stock = AvroSerializer(client, schema_str, conf={"auto.register.schemas": False})
        self.ctx = SerializationContext(subject.removesuffix("-value"), MessageField.VALUE)

    def __call__(self, record: dict[str, Any]) -> bytes:
        payload = self.stock(record, self.ctx)
        assert payload is not None
        return payload


def _serializers_alone(
    settings: Settings, client: SchemaRegistryClient, source: str, n: int = 20_000, repeat: int = 3
) -> tuple[float, float]:
    gen = make_generator(settings, source, seed=1, start_ms=START, rate=settings.sources.default_rate)
    records = [e.value for e in (gen.next_event() for _ in range(n)) if e.value is not None]
    subject = f"{settings.topics.raw(source)}-value"
    schema_str = (settings.schemas_dir / f"{source}.avsc").read_text()
    rates = []
    for serialize in (
        registered_serializer(client, subject, schema_str),
        _StockSerializer(client, subject, schema_str),
    ):
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            for r in records:
                serialize(r)
            best = min(best, time.perf_counter() - t)
        rates.append(len(records) / best)
    return rates[0], rates[1]


def _bare(bootstrap: str, topic: str, n: int, size: int) -> float:
    """The ceiling: confluent-kafka's own produce loop, same producer settings, no Python layer."""
    payloads = [os.urandom(size) for _ in range(1024)]
    keys = [f"k{i}" for i in range(1024)]
    bare = Producer({"bootstrap.servers": bootstrap, **DEFAULTS})
    t = time.monotonic()
    for i in range(n):
        while True:
            try:
                bare.produce(topic, value=payloads[i % 1024], key=keys[i % 1024])
                break
            except BufferError:
                bare.poll(0.01)
        if i % 10_000 == 0:
            bare.poll(0)
    bare.flush(120)
    return n / (time.monotonic() - t)


def _avg_size(bootstrap: str, topic: str, sample: int = 2000) -> int:
    from confluent_kafka import Consumer  # noqa: PLC0415 - only the benchmark reads back

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{time.time()}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    sizes: list[int] = []
    deadline = time.monotonic() + 30
    while len(sizes) < sample and time.monotonic() < deadline:
        msg = c.poll(1.0)
        if msg is not None and msg.error() is None:
            sizes.append(len(msg.value() or b""))
    c.close()
    return int(sum(sizes) / max(1, len(sizes)))


if __name__ == "__main__":
    main()
