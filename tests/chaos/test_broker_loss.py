"""Kafka brokers lost while the pipeline streams and the producer produces.

On a 3-broker KRaft cluster (every topic replication 3, min ISR 2) one broker, the leader of the most
raw partitions, is killed -9: the other two elect new leaders, the idempotent producer and every
consumer (Spark's Kafka source, the serving path) follow them, and every layer is exact afterwards.
Two of the three killed -9 for ``TWO_DOWN_S``: below min ISR and without a controller quorum nothing
can be written or re-led; the producer holds its records, the pipeline waits or restarts, and once
both are back every layer is exact.
On the single-broker stack the only broker is stopped for 20 s: nothing can be read or written
meanwhile, the supervisor restarts what fails, and again every layer is exact. The recovery times are
printed for docs/reliability.md.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.admin import ConfigResource

from eventlake.config import Settings, TopicSettings
from eventlake.kafka.admin import admin_client
from eventlake.services import Stack, endpoints
from eventlake.services.kafka import KafkaCluster, KafkaService
from eventlake.services.process import wait_until
from tests.chaos.streaming import (
    LONG_OUTAGE_S,
    LONG_TIMEOUT,
    SOURCE,
    assert_exact_after,
    finish_and_catch_up,
    outage_backoff,
    produce_once_running,
    restarts,
    stream_settings,
    streaming,
)
from tests.conftest import MakeSettings

pytestmark = pytest.mark.e2e
#: what the cluster keeps writable with one broker gone
REPLICAS, MIN_ISR = 3, 2
#: how long the producer goes on after the fault (records sent to new leaders, or buffered meanwhile)
PRODUCE_AFTER_KILL_S = 20.0
#: how long two of the three nodes stay down
TWO_DOWN_S = 40.0
HEAP = "384m"  # three brokers and Spark on one 2-core machine


@pytest.fixture
def cluster(make_settings: MakeSettings) -> Iterator[KafkaCluster]:
    kafka = KafkaCluster(make_settings("kcluster", kafka={"heap": HEAP}), nodes=REPLICAS, min_isr=MIN_ISR)
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


def _replicated_topics() -> dict[str, Any]:
    """Every topic spec of the config model with min ISR 2 (replication comes from ``kafka``)."""
    defaults = TopicSettings()
    return {
        name: getattr(defaults, name).model_copy(update={"min_insync_replicas": MIN_ISR})
        for name in ("raw_spec", "dlq_spec", "alerts_spec")
    }


def _partitions(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int]]]:
    """partition -> (leader, in-sync replicas), from the cluster's metadata."""
    md = admin_client(bootstrap).list_topics(topic, timeout=10).topics[topic]
    return {p.id: (p.leader, sorted(p.isrs)) for p in md.partitions.values()}


def _broker_config(bootstrap: str, node_id: int) -> dict[str, str]:
    resource = ConfigResource(ConfigResource.Type.BROKER, str(node_id))
    admin = admin_client(bootstrap)  # held until the answer is in: a collected client cancels it
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    return {k: v.value for k, v in entries.items()}


def _stream_settings(
    stack: Stack, make_settings: MakeSettings, tmp_path: Any, streaming: dict[str, Any] | None = None, **kafka: Any
) -> Settings:
    topics = _replicated_topics() if kafka.get("replication_factor", 1) > 1 else {}
    return stream_settings(stack, make_settings, tmp_path, kafka=kafka, topics=topics, streaming=streaming or {})


def _cluster_settings(stack: Stack, make_settings: MakeSettings, tmp_path: Any, cluster: KafkaCluster) -> Settings:
    """The pipeline's settings on ``cluster``, its replication and min ISR checked on the brokers and
    on every raw partition (all replicas in sync) before any fault."""
    settings = _stream_settings(
        stack, make_settings, tmp_path, bootstrap=cluster.bootstrap, replication_factor=REPLICAS
    )
    bootstrap = endpoints(settings).kafka_bootstrap
    broker = _broker_config(bootstrap, 1)
    assert (broker["default.replication.factor"], broker["min.insync.replicas"]) == (str(REPLICAS), str(MIN_ISR))
    assert (broker["offsets.topic.replication.factor"], broker["transaction.state.log.min.isr"]) == (
        str(REPLICAS),
        str(MIN_ISR),
    )
    before = _partitions(bootstrap, settings.topics.raw(SOURCE))
    assert all(len(isr) == REPLICAS for _, isr in before.values()), before
    return settings


def _kill(node: KafkaService) -> None:
    ref = node.running_process()
    assert ref is not None
    os.kill(ref.pid, signal.SIGKILL)


def _all_in_sync(bootstrap: str, topic: str) -> bool:
    return all(len(isr) == REPLICAS for _, isr in _partitions(bootstrap, topic).values())


@pytest.mark.chaos  # ~4-5 min with the cluster's start; tests/services/test_kafka_cluster.py is the make-test part
def test_a_broker_killed_mid_stream_loses_and_duplicates_nothing(
    stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Any, cluster: KafkaCluster
) -> None:
    settings = _cluster_settings(stack, make_settings, tmp_path, cluster)
    live = endpoints(settings)
    topic = settings.topics.raw(SOURCE)
    before = _partitions(live.kafka_bootstrap, topic)
    restarts_before = restarts(f"pipeline_{SOURCE}")
    with streaming(settings, live) as pipeline:
        producing = produce_once_running(spark, pipeline, seed=41)
        leaders = [leader for leader, _ in before.values()]
        victim_id = max(sorted(set(leaders)), key=leaders.count)
        victim = cluster.node(victim_id)
        assert producing.thread.is_alive(), producing.failure
        _kill(victim)
        killed = time.monotonic()

        def moved() -> bool:
            now = _partitions(live.kafka_bootstrap, topic)
            return all(leader not in (victim_id, -1) and victim_id not in isr for leader, isr in now.values())

        assert wait_until(moved, timeout=60, interval=0.5), _partitions(live.kafka_bootstrap, topic)
        elected = time.monotonic() - killed
        time.sleep(max(0.0, PRODUCE_AFTER_KILL_S - elected))  # records keep going to the new leaders
        summary = producing.finish(180)
        n = summary.delivered
        assert summary.failed == 0 and n == summary.sent, summary
        produced = time.monotonic() - killed
        pipeline.until(pipeline.caught_up(live, SOURCE, n), 300, "every record through PostgreSQL gold and silver")
        caught_up = time.monotonic() - killed
        print(
            f"\nreliability broker_kill -9 node {victim_id} of {REPLICAS} (led {leaders.count(victim_id)} of"
            f" {len(leaders)} raw partitions): new leaders {elected:.1f} s after the kill, producer done"
            f" {produced:.1f} s after, caught up {caught_up:.1f} s after ({caught_up - produced:.1f} s after"
            " the last record was produced)"
        )

        # The broker comes back on its data and catches up as a follower, under the running pipeline.
        rejoined = time.monotonic()
        victim.start()
        assert wait_until(lambda: _all_in_sync(live.kafka_bootstrap, topic), timeout=120), _partitions(
            live.kafka_bootstrap, topic
        )
        print(
            f"reliability broker_kill: node {victim_id} restarted, in every ISR"
            f" {time.monotonic() - rejoined:.1f} s later"
        )
    assert_exact_after(pipeline, n, restarts_before, "broker_kill")


@pytest.mark.chaos  # ~5-6 min with the cluster's start
def test_two_of_three_brokers_killed_mid_stream_are_waited_for_and_every_layer_is_exact(
    stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Any, cluster: KafkaCluster
) -> None:
    """Nodes 2 and 3 killed -9 while the producer produces: the survivor can neither acknowledge a write
    (min ISR 2) nor move a leader (no controller quorum). The producer must hold its records and fail
    none, the pipeline must not die of it (the supervisor's probe sees the survivor answer, so every
    query failure here counts against the restart budget), and once both nodes are back every record
    is in every layer, once."""
    settings = _cluster_settings(stack, make_settings, tmp_path, cluster)
    live = endpoints(settings)
    topic = settings.topics.raw(SOURCE)
    restarts_before = restarts(f"pipeline_{SOURCE}")
    with streaming(settings, live) as pipeline:
        producing = produce_once_running(spark, pipeline, seed=47)
        assert producing.thread.is_alive(), producing.failure
        victims = [cluster.node(2), cluster.node(3)]
        for node in victims:
            _kill(node)
        time.sleep(TWO_DOWN_S)
        assert producing.thread.is_alive() and not producing.failure, producing.failure
        for node in victims:
            node.start()
        back = time.monotonic()
        assert wait_until(lambda: _all_in_sync(live.kafka_bootstrap, topic), timeout=180), _partitions(
            live.kafka_bootstrap, topic
        )
        in_sync = time.monotonic() - back
        time.sleep(PRODUCE_AFTER_KILL_S)
        n = finish_and_catch_up(pipeline, producing, live)
        print(
            f"\nreliability two_of_three_killed {TWO_DOWN_S:g} s: every partition in sync {in_sync:.1f} s after"
            f" both were started, caught up {time.monotonic() - back:.1f} s after; {n} records"
        )
    assert_exact_after(pipeline, n, restarts_before, "two_of_three_killed")


@pytest.mark.chaos  # ~3.5 min for 20 s (Spark's first batch alone takes a minute on a loaded machine)
@pytest.mark.parametrize(
    "outage_s", [20.0, 60.0, pytest.param(float(LONG_OUTAGE_S), marks=LONG_TIMEOUT)], ids=lambda s: f"{s:g}s"
)
def test_the_only_broker_stopped_mid_stream_is_ridden_out(
    stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Any, outage_s: float
) -> None:
    """SIGTERM to the single broker (a controlled shutdown, as a restart does), started again on the
    same data and port ``outage_s`` later: producer, queries and serving path wait or restart."""
    kafka = KafkaService(make_settings("kafka1", kafka={"heap": HEAP}))
    kafka.start()
    try:
        settings = _stream_settings(
            stack,
            make_settings,
            tmp_path,
            bootstrap=kafka.endpoint(),
            streaming=outage_backoff(outage_s),
        )
        live = endpoints(settings)
        restarts_before = restarts(f"pipeline_{SOURCE}")
        with streaming(settings, live) as pipeline:
            producing = produce_once_running(spark, pipeline, seed=43)
            assert producing.thread.is_alive(), producing.failure
            kafka.stop()
            time.sleep(outage_s)
            kafka.start()
            back = time.monotonic()
            time.sleep(PRODUCE_AFTER_KILL_S)
            n = finish_and_catch_up(pipeline, producing, live)
            print(
                f"\nreliability broker_stop {outage_s:g} s (single broker): caught up"
                f" {time.monotonic() - back:.1f} s after it was back"
            )
        assert_exact_after(pipeline, n, restarts_before, f"broker_stop {outage_s:g} s")
    finally:
        kafka.stop()
