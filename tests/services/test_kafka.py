"""The real Apache Kafka broker started by eventlake: partitions, idempotence, groups, transactions."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from eventlake.kafka.admin import admin_client
from eventlake.services import Stack
from eventlake.services.kafka import KafkaService, new_cluster_id


def _create_topic(bootstrap: str, partitions: int) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    admin = admin_client(bootstrap)  # keep a reference: a collected client cancels its futures
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=30)
    return name


def _consume_all(bootstrap: str, topic: str, expected: int, **conf: str) -> list[tuple[bytes, bytes, int]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **conf,
        }
    )
    consumer.subscribe([topic])
    got: list[tuple[bytes, bytes, int]] = []
    idle = 0
    try:
        while len(got) < expected or idle < 3:
            msg = consumer.poll(1.0)
            if msg is None:
                idle += 1
                if idle > 30:
                    break
                continue
            if msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                continue
            idle = 0
            got.append((msg.key(), msg.value(), msg.partition()))
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, p) for p in {g[2] for g in got}], timeout=10)
        assert all(tp.offset > 0 for tp in committed), "the consumer group committed its offsets"
    finally:
        consumer.close()
    return got


def test_six_partitions_idempotent_producer_consumer_group(kafka_bootstrap: str) -> None:
    topic = _create_topic(kafka_bootstrap, 6)
    md = admin_client(kafka_bootstrap).list_topics(topic, timeout=10)
    assert len(md.topics[topic].partitions) == 6

    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "acks": "all"})
    delivered: list[int] = []
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: object) -> None:
        if err is not None:
            errors.append(err)
        else:
            delivered.append(msg.partition())  # type: ignore[attr-defined]

    n = 600
    for i in range(n):
        producer.produce(topic, key=f"user-{i % 60}".encode(), value=f"v{i}".encode(), on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert not errors
    assert len(delivered) == n
    assert len(set(delivered)) == 6, "60 distinct keys spread over all 6 partitions"

    got = _consume_all(kafka_bootstrap, topic, n)
    assert sorted(v for _, v, _ in got) == sorted(f"v{i}".encode() for i in range(n))
    # Keyed partitioning: one key always lands on one partition.
    by_key: dict[bytes, set[int]] = {}
    for k, _, p in got:
        by_key.setdefault(k, set()).add(p)
    assert all(len(parts) == 1 for parts in by_key.values())


def test_aborted_transaction_is_invisible_to_read_committed(kafka_bootstrap: str) -> None:
    topic = _create_topic(kafka_bootstrap, 3)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex[:8]}"})
    producer.init_transactions(30)

    producer.begin_transaction()
    for i in range(10):
        producer.produce(topic, key=b"k", value=f"aborted-{i}".encode())
    producer.flush(30)
    producer.abort_transaction(30)

    producer.begin_transaction()
    for i in range(5):
        producer.produce(topic, key=b"k", value=f"committed-{i}".encode())
    producer.commit_transaction(30)

    committed = _consume_all(kafka_bootstrap, topic, 5, **{"isolation.level": "read_committed"})
    assert sorted(v for _, v, _ in committed) == [f"committed-{i}".encode() for i in range(5)]
    # A read_uncommitted reader does see the aborted records: the broker really wrote them.
    everything = _consume_all(kafka_bootstrap, topic, 15, **{"isolation.level": "read_uncommitted"})
    assert sum(v.startswith(b"aborted-") for _, v, _ in everything) == 10


def test_cluster_ids_never_look_like_options() -> None:
    ids = {new_cluster_id() for _ in range(5000)}
    assert len(ids) == 5000
    assert not any(i.startswith("-") for i in ids) and all(len(i) == 22 for i in ids)


def test_the_broker_logs_to_its_server_log(stack: Stack) -> None:
    """slf4j 2 + log4j2: the log was empty while Kafka's slf4j-api 1.7 found no provider (jvm/pom.xml)."""
    log = KafkaService(stack.settings).logs_dir / "server.log"
    text = log.read_text()
    assert "Kafka Server started" in text or "KafkaRaftServer" in text, f"{log}: {text[:300]!r}"
