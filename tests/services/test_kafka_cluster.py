"""A 3-node KRaft cluster (``KafkaCluster``): replicated as configured, and an idempotent producer
loses and duplicates nothing while the leader of its partitions is killed -9 and started again.
The whole pipeline over the same fault is ``tests/chaos/test_broker_loss.py``."""

from __future__ import annotations

import os
import signal
import uuid

import pytest
from confluent_kafka.admin import ConfigResource, NewTopic

from eventlake.errors import CorruptDataError
from eventlake.kafka.admin import admin_client
from eventlake.kafka.producer import EventProducer
from eventlake.services.kafka import KafkaCluster
from eventlake.services.process import wait_until
from tests.conftest import MakeSettings
from tests.services.test_kafka import _consume_all

pytestmark = pytest.mark.e2e


def _leaders(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """partition -> (leader, number of in-sync replicas)."""
    md = admin_client(bootstrap).list_topics(topic, timeout=10).topics[topic]
    return {p.id: (p.leader, len(p.isrs)) for p in md.partitions.values()}


def _assert_rejoined_with_each_record_once(bootstrap: str, topic: str, n: int) -> None:
    """Every replica back in sync, and the topic holds the values 0..n-1, each once (read_committed)."""
    assert wait_until(lambda: all(isr == 3 for _, isr in _leaders(bootstrap, topic).values()), timeout=60)
    values = sorted(int(v) for _, v, _ in _consume_all(bootstrap, topic, n, **{"isolation.level": "read_committed"}))
    assert values == list(range(n)), "each record exactly once"


def test_a_cluster_loses_its_busiest_leader_and_no_record(make_settings: MakeSettings) -> None:
    settings = make_settings("cluster", kafka={"heap": "384m"})
    cluster = KafkaCluster(settings, nodes=3, min_isr=2)
    cluster.start()
    try:
        bootstrap = cluster.bootstrap
        admin = admin_client(bootstrap)  # kept: a collected client cancels its futures
        md = admin.list_topics(timeout=10)
        assert sorted(md.brokers) == [1, 2, 3]
        broker = ConfigResource(ConfigResource.Type.BROKER, "2")
        conf = {k: v.value for k, v in admin.describe_configs([broker])[broker].result(timeout=30).items()}
        assert conf["default.replication.factor"] == conf["offsets.topic.replication.factor"] == "3"
        assert conf["min.insync.replicas"] == conf["transaction.state.log.min.isr"] == "2"

        topic = f"t-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(topic, num_partitions=6)])[topic].result(timeout=30)  # RF from the broker
        assert wait_until(lambda: all(isr == 3 for _, isr in _leaders(bootstrap, topic).values()), timeout=30)

        producer = EventProducer(bootstrap)
        n = 20_000
        leaders = [leader for leader, _ in _leaders(bootstrap, topic).values()]
        victim = cluster.node(max(sorted(set(leaders)), key=leaders.count))
        for i in range(n):
            producer.send(topic, str(i % 500), str(i).encode())
            if i == n // 4:
                ref = victim.running_process()
                assert ref is not None
                os.kill(ref.pid, signal.SIGKILL)
            if i % 100 == 0:
                producer.idle(0.05)  # ~10 s of producing: the kill falls in the middle
        assert producer.flush(120) == 0
        assert producer.delivered[topic] == n and not producer.failed

        victim.start()  # on its own ports and data, as a follower that catches up
        _assert_rejoined_with_each_record_once(bootstrap, topic, n)
    finally:
        cluster.stop()


#: how long two of the three nodes stay dead: longer than a produce request's timeout (30 s), so
#: requests in flight fail and the producer retries them
TWO_DOWN_S = 40


@pytest.mark.chaos  # ~2 min
def test_a_cluster_losing_two_of_three_nodes_holds_every_record_until_they_return(
    make_settings: MakeSettings,
) -> None:
    """Below min ISR (and without a controller quorum) no write can be acknowledged: the producer must
    wait and retry, not fail or lose what was queued; once the nodes are back, every record is there
    exactly once (the idempotent producer's retries of records the survivor appended are not doubled)."""
    settings = make_settings("cluster2", kafka={"heap": "384m"})
    cluster = KafkaCluster(settings, nodes=3, min_isr=2)
    cluster.start()
    try:
        bootstrap = cluster.bootstrap
        admin = admin_client(bootstrap)
        topic = f"t-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(topic, num_partitions=6)])[topic].result(timeout=30)
        assert wait_until(lambda: all(isr == 3 for _, isr in _leaders(bootstrap, topic).values()), timeout=30)

        producer = EventProducer(bootstrap)
        n = 10_000
        victims = [cluster.node(2), cluster.node(3)]
        for i in range(n // 2):
            producer.send(topic, str(i % 500), str(i).encode())
        assert producer.flush(60) == 0 and producer.delivered[topic] == n // 2
        for node in victims:
            ref = node.running_process()
            assert ref is not None
            os.kill(ref.pid, signal.SIGKILL)
        for i in range(n // 2, n):
            producer.send(topic, str(i % 500), str(i).encode())
        # Nothing can be acknowledged now; nothing may fail either.
        still = producer.flush(TWO_DOWN_S)
        print(f"\nreliability two_of_three_down {TWO_DOWN_S} s: {n - producer.delivered[topic]} records waiting")
        assert still > 0 and producer.delivered[topic] < n, "a write was acknowledged without min ISR"
        assert not producer.failed, producer.failed

        for node in victims:
            node.start()
        assert producer.flush(180) == 0, "the records queued during the loss were delivered once nodes returned"
        assert producer.delivered[topic] == n and not producer.failed
        _assert_rejoined_with_each_record_once(bootstrap, topic, n)
    finally:
        cluster.stop()


def test_a_node_formatted_for_another_cluster_is_refused(make_settings: MakeSettings) -> None:
    """A node's data dir from another cluster would split the quorum: refused before anything starts."""
    settings = make_settings("split")
    for node_id, cluster_id in ((1, "A" * 22), (2, "B" * 22)):
        data = KafkaCluster(settings).node(node_id).data_dir
        data.mkdir(parents=True)
        (data / "meta.properties").write_text(f"version=1\nnode.id={node_id}\ncluster.id={cluster_id}\n")
    with pytest.raises(CorruptDataError, match="different clusters"):
        KafkaCluster(settings)
