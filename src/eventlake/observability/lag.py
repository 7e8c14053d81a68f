"""Kafka consumer lag of the streaming queries, computed when Prometheus scrapes.

Spark's Kafka source does not commit offsets to a consumer group; its position is the offsets in
its checkpoint, which each progress event reports (``endOffset``). Lag per partition = the
partition's high watermark now minus that offset. After ``--until-idle`` it is 0.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from eventlake.kafka.security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)

#: a reader's position: topic -> partition -> next offset to read (Spark's ``endOffset`` JSON)
Offsets = dict[str, dict[int, int]]


def _probe(bootstrap: str, security: KafkaSecurity, kind: str) -> Consumer:
    """A consumer that only asks for offsets (ListOffsets: DESCRIBE on the topic); it never joins its group."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"eventlake-{kind}-{uuid.uuid4().hex[:8]}",
            **security.librdkafka(),
        }
    )


def high_watermarks(
    bootstrap: str, topics: list[str], timeout: float = 10.0, security: KafkaSecurity = PLAINTEXT
) -> dict[str, dict[int, int]]:
    """Per topic and partition: the offset the next record will get (what a reader has to reach)."""
    consumer = _probe(bootstrap, security, "ends")
    try:
        out: dict[str, dict[int, int]] = {}
        meta = consumer.list_topics(timeout=timeout)
        for topic in topics:
            parts = meta.topics.get(topic)
            if parts is None or parts.error is not None:
                continue  # not created yet: nothing to read
            out[topic] = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)[1]
                for p in parts.partitions
            }
        return out
    finally:
        consumer.close()


def offsets_read(read: dict[str, Offsets], ends: dict[str, dict[int, int]]) -> int:
    """How much of ``ends`` the queries have read (``read``: query -> topic -> partition -> offset)."""
    done = 0
    for topics in read.values():
        for topic, parts in topics.items():
            for p, offset in parts.items():
                done += min(offset, ends.get(topic, {}).get(p, 0))
    return done


class LagCollector(Collector):
    """``eventlake_kafka_consumer_lag{query, topic, partition}`` from checkpointed vs high-watermark offsets."""

    def __init__(
        self, bootstrap: str, offsets: Callable[[], dict[str, Offsets]], security: KafkaSecurity = PLAINTEXT
    ) -> None:
        self._offsets = offsets
        self._consumer = _probe(bootstrap, security, "lag")
        self._lock = threading.Lock()

    def lag(self) -> dict[tuple[str, str, int], int]:
        out: dict[tuple[str, str, int], int] = {}
        with self._lock:
            for query, topics in self._offsets().items():
                for topic, parts in topics.items():
                    for partition, position in parts.items():
                        try:
                            _, high = self._consumer.get_watermark_offsets(
                                TopicPartition(topic, partition), timeout=2, cached=False
                            )
                        except KafkaException as err:
                            log.warning("lag: watermark unavailable", extra={"topic": topic, "error": str(err)})
                            continue
                        out[(query, topic, partition)] = max(0, high - position)
        return out

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "eventlake_kafka_consumer_lag",
            "Records behind the high watermark: latest offset minus the query's checkpointed offset",
            labels=["query", "topic", "partition"],
        )
        for (query, topic, partition), value in sorted(self.lag().items()):
            family.add_metric([query, topic, str(partition)], value)
        yield family

    def close(self) -> None:
        with self._lock:
            self._consumer.close()
