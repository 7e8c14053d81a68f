"""Producer throughput per source against the bare-producer ceiling, in one run.

For each source: ``produce()`` end to end (generate -> Avro via the registry -> idempotent
producer -> broker ack), then a bare confluent-kafka producer sending pre-serialized bytes of the
same average size with the same producer settings: the ceiling. Prints ev/s of both, the ratio,
and the process's peak RSS. Starts a throw-away stack (Kafka, PostgreSQL, registry).

Run: ``.venv/bin/python bench/produce.py [--n 50000]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer

from eventlake.config import load_settings
from eventlake.kafka.admin import provision_topics
from eventlake.kafka.producer import DEFAULTS
from eventlake.services import Stack, endpoints
from eventlake.services.kafka import admin_client
from eventlake.sources import GENERATORS
from eventlake.sources.produce import produce


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-produce-") as home:
        settings = load_settings(home=Path(home))
        stack = Stack(settings)
        stack.up()
        try:
            live = endpoints(settings)
            admin = admin_client(live.kafka_bootstrap)
            provision_topics(admin, settings.topics.specs(), 1)
            for source in GENERATORS:
                summary = produce(
                    settings,
                    bootstrap=live.kafka_bootstrap,
                    registry_url=live.registry_url,
                    sources=[source],
                    count=args.n,
                    seed=1,
                    start_ms=1_767_225_600_000,
                )
                topic = settings.topics.raw(source)
                # Average payload size of what was just sent, from the topic's bytes on the broker.
                size = _avg_size(live.kafka_bootstrap, topic)
                payloads = [os.urandom(size) for _ in range(1024)]
                keys = [f"k{i}" for i in range(1024)]
                # The ceiling: confluent-kafka's own produce loop, same producer settings, no Python layer.
                bare = Producer({"bootstrap.servers": live.kafka_bootstrap, **DEFAULTS})
                t = time.monotonic()
                for i in range(args.n):
                    while True:
                        try:
                            bare.produce(topic, value=payloads[i % 1024], key=keys[i % 1024])
                            break
                        except BufferError:
                            bare.poll(0.01)
                    if i % 10_000 == 0:
                        bare.poll(0)
                bare.flush(120)
                ceiling = args.n / (time.monotonic() - t)
                rate = summary.events_per_s
                print(
                    f"produce {source:<14} {rate:9.0f} ev/s  bare {ceiling:9.0f} ev/s  "
                    f"ratio {rate / ceiling:.2f}  payload {size} B"
                )
            print(f"produce peak_rss_mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
        finally:
            stack.down()


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
