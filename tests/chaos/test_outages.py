"""Outages of a dependency while the pipeline streams, injected by a loopback proxy in front of the real
server: the pipeline rides them out by itself (a batch's PostgreSQL calls retry; a batch that still
fails fails its query, and the supervisor restarts it from its checkpoint), and every layer is exact
afterwards. The recovery time (outage end to caught up) is printed for docs/reliability.md."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from eventlake.services import Stack, endpoints
from tests.chaos.streaming import LONG_OUTAGE_S, LONG_TIMEOUT, outage_backoff, restarts, start_producing, streaming
from tests.conftest import MakeSettings
from tests.faults import TcpProxy
from tests.streaming.exact import assert_layers_exact
from tests.streaming.test_pipeline import delta_rows, pipeline_settings

pytestmark = pytest.mark.e2e
SOURCE = "transactions"


@pytest.mark.parametrize(
    "outage",
    [
        ("postgres", 20),
        pytest.param(("postgres", 60), marks=pytest.mark.chaos),
        pytest.param(("postgres", LONG_OUTAGE_S), marks=[pytest.mark.chaos, LONG_TIMEOUT]),
        # longer than the 8 minutes after which counting an outage's failures used up the default budget
        pytest.param(("postgres", 900), marks=[pytest.mark.chaos, pytest.mark.timeout(2400)]),
        pytest.param(("registry", 10), marks=pytest.mark.chaos),
        pytest.param(("registry", 60), marks=pytest.mark.chaos),
        pytest.param(("registry", LONG_OUTAGE_S), marks=[pytest.mark.chaos, LONG_TIMEOUT]),
    ],
    ids=lambda o: f"{o[0]}-{o[1]}s",
)
def test_an_outage_mid_stream_is_ridden_out_and_every_layer_is_exact(
    stack: Stack, make_settings: MakeSettings, spark: Any, tmp_path: Any, outage: tuple[str, float]
) -> None:
    """PostgreSQL down: the batches fail and the supervisor restarts the query until it is back, outside
    the restart budget (it sees PostgreSQL down). The registry down: the batches decode with the
    schemas they know, nothing restarts."""
    dependency, outage_s = outage
    settings = pipeline_settings(
        stack,
        make_settings,
        tmp_path,
        streaming={
            "trigger_s": 1.0,
            "max_offsets_per_trigger": 1000,
            "restart_backoff_max_s": 2.0,
            # An outage's failures are not in the budget: counted, the 20 s outage's (a failed restart
            # every 2 s) used up this one and stopped the pipeline.
            "max_restarts": 2,
            **outage_backoff(outage_s),
        },
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
    restarts_before = restarts(f"pipeline_{SOURCE}")
    producing = start_producing(settings, live, SOURCE, n, rate=200, seed=33)
    try:
        with streaming(settings, live) as pipeline:
            pipeline.until(lambda: len(delta_rows(settings, "silver", SOURCE)) > 0, 180, "the first silver rows")
            proxy.refuse()  # the dependency is down: connections reset, new ones refused
            time.sleep(outage_s)
            proxy.heal()
            producing.join(120)
            caught_up = pipeline.caught_up(live, SOURCE, n)
            recovery = pipeline.until(caught_up, 300, "every record through PostgreSQL gold and silver")
            print(f"\nreliability {dependency}_outage {outage_s:g} s: recovered {recovery:.1f} s after it ended")
        assert not pipeline.failure, pipeline.failure
    finally:
        proxy.close()
    count = restarts(f"pipeline_{SOURCE}") - restarts_before
    print(f"reliability {dependency}_outage {outage_s:g} s: {count:g} query restarts")
    if dependency == "postgres":
        assert count > 0, "the outage outlasted the batch's retries"
    else:
        assert count == 0, "known schemas decode without the registry"
    settings.postgres.url = SecretStr(direct.postgres_url)
    settings.registry.url = direct.registry_url
    assert_layers_exact(settings, SOURCE, n)
