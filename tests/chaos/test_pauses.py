"""A dependency paused (SIGSTOP) mid-stream for a bounded time, then resumed (SIGCONT), while the
producer produces.

A paused server is not a server that is down: the kernel still accepts connections into its listen
backlog and acknowledges every packet, so nothing is refused or reset, keepalives see nothing wrong,
and a client waits until its own timeouts (PostgreSQL: ``eventlake.pg`` bounds connects to 10 s and
every answer to 30 s; Kafka: the clients' request timeouts). The pipeline must ride the pause out by
itself, and every layer be exact afterwards. Each dependency is a server of the test's own, found
through its service record (``<home>/run/<name>.json``); the pause takes its whole process tree
(PostgreSQL's postmaster and backends). The recovery time (resumed to caught up) is printed for
docs/reliability.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from eventlake.config import Settings
from eventlake.services import Stack, endpoints
from eventlake.services.base import Service
from eventlake.services.kafka import KafkaService
from eventlake.services.postgres import PostgresService
from tests.chaos.streaming import SOURCE, produce_once_running, restarts, stream_settings, streaming
from tests.conftest import MakeSettings
from tests.faults import paused
from tests.streaming.exact import assert_layers_exact

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]
#: how long the producer goes on after the pause ends
PRODUCE_AFTER_S = 20.0
HEAP = "384m"  # a broker of the test's own next to the session's and Spark, on 2 cores
PAUSES = [15.0, 60.0]


@pytest.fixture
def own_kafka(make_settings: MakeSettings) -> Iterator[KafkaService]:
    service = KafkaService(make_settings("kpause", kafka={"heap": HEAP}))
    service.start()
    try:
        yield service
    finally:
        service.stop()


def _pause_mid_stream(spark: Any, settings: Settings, service: Service, pause_s: float, *, seed: int) -> None:
    """Stream, pause ``service`` for ``pause_s`` once records reach silver, resume it, produce for
    ``PRODUCE_AFTER_S`` more, wait until caught up; then every layer must be exact."""
    live = endpoints(settings)
    name = service.name
    query_restarts, serving_restarts = restarts(f"pipeline_{SOURCE}"), restarts("serving")
    with streaming(settings, live) as pipeline:
        producing = produce_once_running(spark, pipeline, seed=seed)
        ref = service.running_process()  # from the service's record, <home>/run/<name>.json
        assert ref is not None, f"{name} is not running"
        with paused(ref.pid) as processes:
            assert producing.thread.is_alive(), producing.failure
            time.sleep(pause_s)
        resumed = time.monotonic()
        time.sleep(PRODUCE_AFTER_S)
        summary = producing.finish(300)
        n = summary.delivered
        assert summary.failed == 0 and n == summary.sent, summary
        produced = time.monotonic() - resumed
        pipeline.until(pipeline.caught_up(live, SOURCE, n), 300, "every record through PostgreSQL gold and silver")
        recovery = time.monotonic() - resumed
        pipeline.settle(spark)
        print(
            f"\nreliability {name}_pause {pause_s:g} s ({len(processes)} processes SIGSTOPped): caught up"
            f" {recovery:.1f} s after SIGCONT ({recovery - produced:.1f} s after the last of {n} records)"
        )
    assert not pipeline.failure, pipeline.failure
    print(
        f"reliability {name}_pause {pause_s:g} s: {restarts(f'pipeline_{SOURCE}') - query_restarts:g} query"
        f" restarts, {restarts('serving') - serving_restarts:g} of the serving path"
    )
    assert_layers_exact(settings, SOURCE, n)


@pytest.mark.parametrize("pause_s", PAUSES, ids=lambda s: f"{s:g}s")
def test_a_paused_postgres_is_ridden_out_and_every_layer_is_exact(
    stack: Stack,
    make_settings: MakeSettings,
    spark: Any,
    tmp_path: Any,
    *,
    own_postgres: PostgresService,
    pause_s: float,
) -> None:
    """Every PostgreSQL call hangs: the pass's batch, the serving path's writes, the lake lock's check,
    the alert dispatcher. Each gives up within its bound, retries, and the supervisor restarts what
    failed; after the pause the backlog is worked off."""
    settings = stream_settings(stack, make_settings, tmp_path, postgres={"url": own_postgres.endpoint()})
    _pause_mid_stream(spark, settings, own_postgres, pause_s, seed=51)


@pytest.mark.parametrize("pause_s", PAUSES, ids=lambda s: f"{s:g}s")
def test_a_paused_broker_is_ridden_out_and_every_layer_is_exact(
    stack: Stack,
    make_settings: MakeSettings,
    spark: Any,
    tmp_path: Any,
    *,
    own_kafka: KafkaService,
    pause_s: float,
) -> None:
    """The only broker paused: the producer buffers, Spark's offset look-ups and fetches time out and
    retry (the query restarts if they run out), the serving path's consumer waits."""
    settings = stream_settings(stack, make_settings, tmp_path, kafka={"bootstrap": own_kafka.endpoint()})
    _pause_mid_stream(spark, settings, own_kafka, pause_s, seed=53)
