"""Kafka Connect (distributed mode) started by eventlake against the session's broker."""

from __future__ import annotations

import httpx
import pytest

from eventlake.kafka.admin import admin_client
from eventlake.services.connect import ConnectService
from tests.conftest import MakeSettings

pytestmark = pytest.mark.e2e


def test_connect_worker_starts_serves_rest_and_stops(make_settings: MakeSettings, kafka_bootstrap: str) -> None:
    settings = make_settings("connect", kafka={"bootstrap": kafka_bootstrap}, connect={"enabled": True})
    svc = ConnectService(settings)
    assert svc.enabled() and svc.managed
    svc.start()
    try:
        url = svc.endpoint()
        assert url is not None and svc.check().ok
        assert httpx.get(f"{url}/connectors", timeout=10).json() == []
        listed = httpx.get(f"{url}/connector-plugins?connectorsOnly=false", timeout=10).json()
        plugins = {p["class"].rsplit(".", 1)[-1] for p in listed}
        assert {"JsonConverter", "InsertField"} <= {p.split("$")[0] for p in plugins}
        topics = admin_client(kafka_bootstrap).list_topics(timeout=10).topics
        assert {"_connect-configs", "_connect-offsets", "_connect-status"} <= set(topics)
        # The worker's own log (slf4j 2 + log4j2): it was empty while slf4j-api 1.7 found no provider.
        assert "Kafka Connect started" in (svc.dir / "worker.log").read_text()
    finally:
        assert svc.stop()
    assert svc.running_process() is None
