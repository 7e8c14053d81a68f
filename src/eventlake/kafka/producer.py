"""An idempotent, batching Kafka producer with delivery accounting.

``enable.idempotence=true`` and ``acks=all``: the broker de-duplicates retries, so a broker
restart mid-run loses and duplicates nothing (records wait up to ``message.timeout.ms``).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from eventlake.observability.metrics import PRODUCE_ERRORS, PRODUCE_LATENCY, RECORDS_PRODUCED

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 1_048_576,
    # Long enough to ride out a broker restart; the idempotent producer keeps order and dedupes.
    "message.timeout.ms": 300_000,
    "log_level": 3,
}


class EventProducer:
    """Thin facade over ``confluent_kafka.Producer`` that counts deliveries per topic."""

    def __init__(self, bootstrap: str, sources: dict[str, str] | None = None, **overrides: Any) -> None:
        """``sources`` maps topic -> source name, the ``source`` label of the producer metrics."""
        self.producer = Producer({"bootstrap.servers": bootstrap, **DEFAULTS, **overrides})
        self._sources = sources or {}
        self.delivered: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self._since_poll = 0

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        topic = msg.topic() or "?"
        source = self._sources.get(topic, topic)
        if err is None:
            self.delivered[topic] += 1
            RECORDS_PRODUCED.labels(source).inc()
            PRODUCE_LATENCY.labels(source).observe(msg.latency() or 0.0)
        else:
            self.failed[topic] += 1
            PRODUCE_ERRORS.labels(source).inc()
            log.error("delivery failed", extra={"topic": topic, "error": err.str(), "retriable": err.retriable()})

    def send(self, topic: str, key: str, value: bytes, headers: dict[str, str] | None = None) -> None:
        """Queue one record; blocks (serving delivery reports) while the local queue is full."""
        hdrs: dict[str, str | bytes | None] | None = dict(headers) if headers else None
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, headers=hdrs, on_delivery=self._on_delivery)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.sent[topic] += 1
        self._since_poll += 1
        if self._since_poll >= 1000:
            self.producer.poll(0)
            self._since_poll = 0

    def flush(self, timeout: float = 60.0) -> int:
        """Wait for outstanding deliveries; returns how many are still undelivered."""
        return int(self.producer.flush(timeout))
