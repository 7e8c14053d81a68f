"""An idempotent, batching Kafka producer with delivery accounting.

``enable.idempotence=true`` and ``acks=all``: the broker de-duplicates retries, so a broker
restart mid-run loses and duplicates nothing (records wait up to ``message.timeout.ms``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any, cast

from confluent_kafka import KafkaError, Message, Producer

from eventlake.kafka.security import PLAINTEXT, KafkaSecurity
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
    # Long enough to ride out a broker restart (eventlake produce: kafka.producer_delivery_timeout_s);
    # the idempotent producer keeps order and dedupes.
    "message.timeout.ms": 300_000,
    "log_level": 3,
}


class _Deliveries:
    """Delivery reports, counted per topic and into the producer metrics.

    Kept apart from :class:`EventProducer`: the librdkafka producer holds this callback, and a
    callback bound to the facade would make a reference cycle that keeps the producer (and its
    threads) alive after the facade is dropped.
    """

    def __init__(self, sources: dict[str, str]) -> None:
        self.sources = sources
        self.delivered: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self._metrics: dict[str, tuple[Any, Any, Any]] = {}

    def _children(self, topic: str) -> tuple[Any, Any, Any]:
        """The (produced, latency, errors) metric children of ``topic``'s source, looked up once."""
        children = self._metrics.get(topic)
        if children is None:
            source = self.sources.get(topic, topic)
            children = (RECORDS_PRODUCED.labels(source), PRODUCE_LATENCY.labels(source), PRODUCE_ERRORS.labels(source))
            self._metrics[topic] = children
        return children

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        topic = msg.topic() or "?"
        produced, latency, errors = self._children(topic)
        if err is None:
            self.delivered[topic] += 1
            produced.inc()
            latency.observe(msg.latency() or 0.0)
        else:
            self.failed[topic] += 1
            errors.inc()
            log.error("delivery failed", extra={"topic": topic, "error": err.str(), "retriable": err.retriable()})


class EventProducer:
    """Thin facade over ``confluent_kafka.Producer`` that counts deliveries per topic.

    Per record it does little more than the bare producer: one ``produce()`` call (the delivery
    callback is set once in the config, no headers dict when there are none); delivery reports
    are served every ``poll_every`` records and while :meth:`idle`.
    """

    def __init__(
        self,
        bootstrap: str,
        sources: dict[str, str] | None = None,
        *,
        poll_every: int = 1000,
        security: KafkaSecurity = PLAINTEXT,
        **overrides: Any,
    ) -> None:
        """``sources`` maps topic -> source name, the ``source`` label of the producer metrics."""
        self._reports = _Deliveries(sources or {})
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                **DEFAULTS,
                **security.librdkafka(),
                "on_delivery": self._reports,
                **overrides,
            }
        )
        self.delivered = self._reports.delivered
        self.failed = self._reports.failed
        self.sent: Counter[str] = Counter()
        self.poll_every = poll_every
        self._since_poll = 0

    def send(self, topic: str, key: str, value: bytes, headers: dict[str, str] | None = None) -> None:
        """Queue one record; blocks (serving delivery reports) while the local queue is full.

        ``headers`` is passed as is (not copied); an empty dict sends no headers."""
        hdrs = cast("dict[str, str | bytes | None]", headers) if headers else None
        while True:
            try:
                self.producer.produce(topic, value, key, headers=hdrs)
                break
            except BufferError:
                self.idle(0.05)  # the local queue is full: serve reports, let librdkafka send
        self.sent[topic] += 1
        self._since_poll += 1
        if self._since_poll >= self.poll_every:
            self.producer.poll(0)
            self._since_poll = 0

    def idle(self, seconds: float) -> None:
        """Serve the delivery reports that are ready, then sleep ``seconds``.

        Not ``poll(seconds)``: a SIGINT arriving inside librdkafka's blocking poll surfaces as
        ``SystemError: ... returned NULL without setting an exception`` instead of KeyboardInterrupt
        (seen in CI: Ctrl-C then exited 1 with a traceback instead of flushing and exiting 130);
        ``time.sleep`` turns it into KeyboardInterrupt.
        """
        self.producer.poll(0)
        self._since_poll = 0
        time.sleep(seconds)

    def flush(self, timeout: float = 60.0) -> int:
        """Wait for outstanding deliveries; returns how many are still undelivered."""
        return int(self.producer.flush(timeout))
