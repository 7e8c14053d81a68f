"""The registry process against faults of its database, and its refusal to serve writes openly off loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from eventlake.errors import ConfigError
from eventlake.services.postgres import PostgresService
from eventlake.services.registry import RegistryService
from tests.conftest import MakeSettings
from tests.faults import TcpProxy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(postgres_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLAKE_")}
    return {**env, "EVENTLAKE_POSTGRES_URL": postgres_url}


@pytest.fixture
def proxied_registry(fresh_db: str) -> Iterator[tuple[str, TcpProxy]]:
    parts = urlsplit(fresh_db)
    proxy = TcpProxy(str(parts.hostname), int(parts.port or 5432))
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventlake.registry", "--port", str(port)],
        env=_env(proxy.url_for(fresh_db)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/subjects", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the registry did not start"
            time.sleep(0.2)
        yield url, proxy
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proxy.close()


def test_registry_reconnects_after_its_database_drops_every_connection(
    proxied_registry: tuple[str, TcpProxy],
) -> None:
    """A PostgreSQL restart closes every pooled connection: the next requests must not answer 500."""
    url, proxy = proxied_registry
    schema = '{"type": "record", "name": "R", "fields": [{"name": "event_id", "type": "string"}]}'
    resp = httpx.post(f"{url}/subjects/r-value/versions", json={"schema": schema})
    assert resp.status_code == 200, resp.text
    for _ in range(3):  # several pooled connections, each broken
        proxy.cut()
        answers = [httpx.get(f"{url}/subjects/r-value/versions/latest").status_code for _ in range(10)]
        assert answers == [200] * 10


def test_registry_refuses_a_public_bind_without_credentials(fresh_db: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "eventlake.registry", "--host", "0.0.0.0", "--port", str(_free_port())],
        env=_env(fresh_db),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines and "EVENTLAKE_REGISTRY_AUTH_TOKEN" in lines[-1] and "0.0.0.0" in lines[-1]
    assert "Traceback" not in proc.stderr


def test_registry_answers_503_while_its_database_is_down_then_recovers(
    proxied_registry: tuple[str, TcpProxy],
) -> None:
    """PostgreSQL down: a retryable Confluent-style 503 within seconds (not a 500, not a hang); back by itself."""
    url, proxy = proxied_registry
    schema = '{"type": "record", "name": "R", "fields": [{"name": "event_id", "type": "string"}]}'
    assert httpx.post(f"{url}/subjects/r-value/versions", json={"schema": schema}).status_code == 200
    proxy.refuse()
    for path in ("/subjects", "/subjects/r-value/versions/latest", "/config"):
        started = time.monotonic()
        resp = httpx.get(f"{url}{path}", timeout=30)
        took = time.monotonic() - started
        assert resp.status_code == 503, (path, resp.status_code, resp.text)
        body = resp.json()
        assert body["error_code"] == 50301 and "PostgreSQL" in body["message"], body
        assert took < 15, f"{path} took {took:.1f} s to say the database is down"
    write = httpx.post(f"{url}/subjects/r-value/versions", json={"schema": schema}, timeout=30)
    assert write.status_code == 503 and write.json()["error_code"] == 50301
    assert httpx.get(f"{url}/health/ready", timeout=30).status_code == 503
    proxy.heal()
    deadline = time.monotonic() + 30
    while (code := httpx.get(f"{url}/subjects/r-value/versions/latest", timeout=30).status_code) != 200:
        assert code == 503, code
        assert time.monotonic() < deadline, "the registry did not recover after its database came back"
        time.sleep(0.5)
    assert httpx.get(f"{url}/health/ready", timeout=10).status_code == 200


def test_registry_rides_out_a_real_postgres_restart(make_settings: MakeSettings) -> None:
    """The reported case: PostgreSQL stopped (``pg_ctl -m fast``) and started again, registry untouched."""
    settings = make_settings("pg-restart")
    pg, registry = PostgresService(settings), RegistryService(settings)
    pg.start()
    try:
        registry.start()
        url = registry.endpoint()
        assert url is not None
        schema = '{"type": "record", "name": "R", "fields": [{"name": "event_id", "type": "string"}]}'
        sid = httpx.post(f"{url}/subjects/r-value/versions", json={"schema": schema}, timeout=30).json()["id"]
        pg.stop()
        down = httpx.get(f"{url}/subjects/r-value/versions/latest", timeout=30)
        assert down.status_code == 503 and down.json()["error_code"] == 50301, down.text
        assert not registry.check().ok
        pg.start()
        deadline = time.monotonic() + 30
        while not registry.check().ok:
            assert time.monotonic() < deadline, "the registry stayed unhealthy after PostgreSQL came back"
            time.sleep(0.5)
        for _ in range(10):  # every pooled connection was broken by the restart
            resp = httpx.get(f"{url}/subjects/r-value/versions/latest", timeout=30)
            assert resp.status_code == 200 and resp.json()["id"] == sid, resp.text
        assert registry.running_process() is not None, "recovered without a registry restart"
    finally:
        registry.stop()
        pg.stop()


def test_service_manager_refuses_a_public_registry_bind_without_credentials(make_settings: MakeSettings) -> None:
    settings = make_settings("public-bind", registry={"host": "0.0.0.0"})
    with pytest.raises(ConfigError) as caught:
        RegistryService(settings).start()
    assert "EVENTLAKE_REGISTRY_AUTH_TOKEN" in str(caught.value) and "\n" not in str(caught.value)
    assert RegistryService(settings).running_process() is None
