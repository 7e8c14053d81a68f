"""Outages of a dependency while the pipeline streams, injected by a loopback proxy in front of the real
server: the pipeline rides them out by itself (a batch's PostgreSQL calls retry; a batch that still
fails fails its query, and the supervisor restarts it from its checkpoint), and every layer is exact
afterwards. The recovery time (outage end to caught up) is printed for docs/reliability.md."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from deltalake.exceptions import TableNotFoundError
from prometheus_client import REGISTRY
from pydantic import SecretStr

from eventlake.services import Stack, endpoints
from eventlake.sources.produce import produce
from eventlake.streaming.jobs import JOBS, run_jobs
from tests.conftest import MakeSettings
from tests.faults import TcpProxy
from tests.streaming import recompute
from tests.streaming.exact import assert_layers_exact
from tests.streaming.test_pipeline import START, assert_gold_matches, delta_rows, pipeline_settings

pytestmark = pytest.mark.e2e
SOURCE = "transactions"


def _restarts(component: str) -> float:
    return REGISTRY.get_sample_value("eventlake_pipeline_restarts_total", {"component": component}) or 0.0


def _until(check: Callable[[], bool], timeout_s: float, what: str, failure: list[BaseException]) -> float:
    """Seconds until ``check()`` holds (fails the test after ``timeout_s``, or when the pipeline died)."""
    t = time.monotonic()
    while time.monotonic() - t < timeout_s:
        assert not failure, failure
        try:
            if check():
                return time.monotonic() - t
        except (AssertionError, TableNotFoundError):
            pass  # not there yet
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


@pytest.mark.parametrize(
    "outage",
    [
        ("postgres", 20),
        pytest.param(("postgres", 90), marks=pytest.mark.chaos),
        pytest.param(("registry", 30), marks=pytest.mark.chaos),
    ],
    ids=lambda o: f"{o[0]}-{o[1]}s",
)
def test_an_outage_mid_stream_is_ridden_out_and_every_layer_is_exact(
    stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Any, outage: tuple[str, float]
) -> None:
    """PostgreSQL down: the batches fail and the supervisor restarts the query until it is back.
    The registry down: the batches decode with the schemas they know, nothing restarts."""
    dependency, outage_s = outage
    settings = pipeline_settings(
        stack,
        make_settings,
        tmp_path,
        streaming={"trigger_s": 1.0, "max_offsets_per_trigger": 1000, "restart_backoff_max_s": 2.0},
    )
    settings.topics.sources = (SOURCE,)
    direct = endpoints(settings)
    url = direct.postgres_url if dependency == "postgres" else direct.registry_url
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    proxy = TcpProxy(parts.hostname, parts.port)
    # The pipeline reaches the dependency only through the proxy.
    if dependency == "postgres":
        settings.postgres.url = SecretStr(proxy.url_for(url))
    else:
        settings.registry.url = proxy.url_for(url)
    live = endpoints(settings)
    n = 2500
    producer = threading.Thread(
        target=produce,
        kwargs={
            "settings": settings,
            "bootstrap": live.kafka_bootstrap,
            "registry_url": live.registry_url,
            "sources": [SOURCE],
            "count": n,
            "rate": 200,
            "seed": 33,
            "start_ms": START,
            "faults": 0.03,
        },
    )
    stop = threading.Event()
    failure: list[BaseException] = []

    def stream() -> None:
        try:
            run_jobs(settings, live, list(JOBS), until_idle=False, stop=stop)
        except BaseException as err:  # reported by the main thread
            failure.append(err)

    runner = threading.Thread(target=stream, daemon=True)
    restarts_before = _restarts(f"pipeline_{SOURCE}")
    producer.start()
    runner.start()
    try:
        _until(lambda: len(delta_rows(settings, "silver", SOURCE)) > 0, 180, "the first silver rows", failure)
        proxy.refuse()  # the dependency is down: connections reset, new ones refused
        time.sleep(outage_s)
        proxy.heal()
        producer.join(timeout=120)
        raw = recompute.read_topic(live.kafka_bootstrap, live.registry_url, settings.topics.raw(SOURCE), n)

        def caught_up() -> bool:
            assert_gold_matches(settings, SOURCE, recompute.gold(SOURCE, raw.records), delta=False)
            return len(delta_rows(settings, "silver", SOURCE)) == len(raw.records)

        recovery = _until(caught_up, 300, "every record through PostgreSQL gold and silver", failure)
        print(f"\nreliability {dependency}_outage {outage_s:g} s: recovered {recovery:.1f} s after it ended")
    finally:
        stop.set()
        runner.join(timeout=120)
        proxy.close()
    assert not failure, failure
    restarts = _restarts(f"pipeline_{SOURCE}") - restarts_before
    print(f"reliability {dependency}_outage {outage_s:g} s: {restarts:g} query restarts")
    if dependency == "postgres":
        assert restarts > 0, "the outage outlasted the batch's retries"
    else:
        assert restarts == 0, "known schemas decode without the registry"
    settings.postgres.url = SecretStr(direct.postgres_url)
    settings.registry.url = direct.registry_url
    assert_layers_exact(settings, SOURCE, n)
