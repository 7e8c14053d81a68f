"""The pass's schema cache against a registry that stops answering mid-stream (real registry, TCP proxy)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from eventlake.errors import RegistryUnavailableError
from eventlake.observability.metrics import REGISTRY_UNREACHABLE
from eventlake.streaming.schemas import SchemaCache
from tests.faults import TcpProxy


@pytest.fixture
def proxy(registry_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(registry_url)
    p = TcpProxy(str(parts.hostname), int(parts.port or 80))
    yield p
    p.close()


def test_a_registry_outage_does_not_stop_decoding_with_known_versions(registry_url: str, proxy: TcpProxy) -> None:
    subject = f"t.{uuid.uuid4().hex[:8]}-value"
    schema = json.dumps({"type": "record", "name": "R", "fields": [{"name": "event_id", "type": "string"}]})
    sid = httpx.post(f"{registry_url}/subjects/{subject}/versions", json={"schema": schema}).json()["id"]
    cache = SchemaCache(proxy.url_for(registry_url), subject, timeout_s=1.0)
    assert list(cache.subject_writers()) == [sid]

    proxy.blackhole()
    before = REGISTRY_UNREACHABLE.labels(subject)._value.get()
    assert list(cache.subject_writers()) == [sid], "the cached versions keep the batch decoding"
    assert json.loads(cache.reader) == json.loads(schema)
    assert REGISTRY_UNREACHABLE.labels(subject)._value.get() == before + 1

    # Nothing cached yet: no schema to decode with, so the batch must fail (and be retried), loudly.
    with pytest.raises(RegistryUnavailableError, match="did not answer"):
        SchemaCache(proxy.url_for(registry_url), subject, timeout_s=1.0).subject_writers()

    proxy.heal()
    assert list(cache.subject_writers()) == [sid]
